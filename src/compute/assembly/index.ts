import { finiteRows, type RowBlock } from '../curvature.js';
import type { DenseLayer } from '../layers/dense.js';
import type { PreparedModel } from '../model.js';
import type { ParameterTensor } from '../parameters.js';
import { spareView } from '../tiles.js';
import { tf, type Tensor, type Tensor2D } from '../tf.js';
import { key, pairFactors, type PairFactors } from './factors.js';

/**
 * Structured assembly of the full Hessian of a sequential dense stack (issue 10). With a_aug = [a, 1],
 * g_k = dL/dz_k, and the per-example factors S, E of factors.ts, for layers lo <= hi:
 *
 *   H[(lo: i, j), (hi: p, q)] = sum_b a_lo[b,i] a_hi[b,p] S^{lo,hi}[b,j,q] + sum_b a_lo[b,i] g_hi[b,q] E^{lo,hi}[b,j,p]
 *
 * (a_lo is layer lo's augmented input, i, p index augmented-kernel rows, j, q units). Each sum is one
 * GEMM whose inner dimension is the batch: the Khatri-Rao product of two small factors, [(i, p), B],
 * times S or E laid out [B, (j, q)], then a transpose of the product into the flat (i, j) x (p, q) order.
 * That is about 2 B P_lo P_hi multiply-adds per term in large matMuls, instead of the R-operator's
 * passes through every layer width per row.
 */

/** The layers that hold selected tensors, ascending. */
const selectedLayers = (parameters: readonly ParameterTensor[]) => [...new Set(parameters.map((t) => t.layer))].sort((a, b) => a - b);

/**
 * The augmented-kernel rows [first, first + count) of a layer that its selected tensors cover: the
 * kernel's rows, the bias row, or both (kernel and bias are adjacent, so it is one range).
 */
function selectedRows(parameters: readonly ParameterTensor[], layer: number, inputs: number): { first: number; count: number } {
  const kinds = parameters.filter((t) => t.layer === layer).map((t) => t.kind);
  const first = kinds.includes('kernel') ? 0 : inputs;
  return { first, count: (kinds.includes('bias') ? inputs + 1 : inputs) - first };
}

/**
 * The first augmented-kernel row p of the block's own layer whose columns (p, q) its upper-only rows
 * compute. The layer's columns of earlier kernel rows are the transposes of rows computed before this
 * block (earlier whole kernel rows, or the whole kernel when it precedes the bias in the flat vector),
 * which the caller copies (pipeline.ts's symmetricColumns): the layer's own pair then costs about half.
 */
export function firstOwnRow(parameters: readonly (Pick<ParameterTensor, 'layer' | 'shape' | 'offset'> & { kind?: string })[], block: RowBlock): number {
  const tensor = parameters[block.tensor];
  if (tensor.kind === 'kernel') return Math.floor(block.start / tensor.shape[1]);
  const kernel = parameters.find((t) => t.layer === tensor.layer && t.kind === 'kernel');
  return kernel && kernel.offset < tensor.offset ? kernel.shape[0] : 0;
}

/** The factors of one prepared model, kept until dispose(); rows() then assembles any row block. */
export class StructuredAssembly {
  private readonly factors: Map<string, PairFactors>;
  private readonly kept: Tensor[] = [];

  /** `lows`: the lower layers of the pairs to prepare (all by default; ChunkedAssembly asks for a block's). */
  constructor(
    private readonly model: PreparedModel,
    lows?: readonly number[],
  ) {
    const selected = selectedLayers(model.parameters);
    const keep = <T extends Tensor>(t: T) => {
      this.kept.push(t);
      return t;
    };
    let factors = new Map<string, PairFactors>();
    tf.tidy(() => {
      factors = pairFactors(model, selected, keep, lows ?? selected);
      return this.kept; // everything else the recursion made is freed here
    });
    this.factors = factors;
  }

  /**
   * Rows [block.count x P] of the Hessian; with `upperOnly`, only the columns of the block's layer
   * and above, and of its own layer only from kernel row firstOwnRow() on (the rest stay 0).
   * `into`: a buffer to write them to instead of a new one (at least their bytes; zeroed here).
   */
  rows(block: RowBlock, upperOnly = false, into?: ArrayBuffer): Float32Array {
    const { model } = this;
    const width = model.size;
    const tensor = model.parameters[block.tensor];
    const rowLayer = model.layers[tensor.layer];
    const out = zeroedRows(block.count * width, into);
    // The augmented-kernel rows i0 .. i0+c-1 that cover the block, and where the block starts in them.
    const first = (tensor.kind === 'bias' ? rowLayer.inputs * rowLayer.units : 0) + block.start;
    const i0 = Math.floor(first / rowLayer.units);
    const c = Math.floor((first + block.count - 1) / rowLayer.units) - i0 + 1;
    const skip = first - i0 * rowLayer.units;
    const columnLayers = selectedLayers(model.parameters).filter((l) => !upperOnly || l >= tensor.layer);
    // Whether every value is finite, checked cheaply per pair (a float32 sum in TF.js is finite when they
    // all are, and rarely not when they are: then finiteRows decides).
    let finite = true;
    for (const columnLayer of columnLayers) {
      const columns = model.layers[columnLayer];
      const selected = selectedRows(model.parameters, columnLayer, columns.inputs);
      const own = upperOnly && columnLayer === tensor.layer ? Math.max(selected.first, firstOwnRow(model.parameters, block)) : selected.first;
      const range = { first: own, count: selected.first + selected.count - own };
      const { block: blockTensor, diagonal, sum } = tf.tidy(() => {
        const pair = this.pairBlock(tensor.layer, columnLayer, i0, c, range);
        return { ...pair, sum: tf.sum(pair.block) };
      });
      try {
        finite &&= Number.isFinite(sum.dataSync()[0]);
        // Read right away: a wasm heap view is valid until the next TF.js op.
        const values = hostValues(blockTensor);
        const stride = range.count * columns.units;
        if (diagonal) finite = this.addDiagonalTerm(values, stride, hostValues(diagonal), tensor.layer, columnLayer, i0, c, range) && finite;
        for (const t of model.parameters) {
          if (t.layer !== columnLayer) continue;
          // The tensor's kernel rows [p0, p1) within the range: its kernel rows, or the bias row.
          const tensorFirst = t.kind === 'bias' ? columns.inputs : 0;
          const p0 = Math.max(tensorFirst, range.first);
          const p1 = Math.min(tensorFirst + (t.kind === 'bias' ? 1 : columns.inputs), range.first + range.count);
          if (p0 >= p1) continue;
          const [from, to, length] = [(p0 - range.first) * columns.units, t.offset + (p0 - tensorFirst) * columns.units, (p1 - p0) * columns.units];
          for (let d = 0; d < block.count; d++) {
            const src = (skip + d) * stride + from;
            out.set(values.subarray(src, src + length), d * width + to);
          }
        }
      } finally {
        tf.dispose(diagonal ? [blockTensor, diagonal, sum] : [blockTensor, sum]);
      }
    }
    finite = addRegularizer(out, width, tensor, block, model.parameters, rowLayer) && finite;
    if (!finite) finiteRows(out, block); // throws the NumericalError unless the sums overflowed on finite values
    return out;
  }

  /**
   * Rows (r: i, j) for i in [i0, i0+c) of layer r against the columns (h: p, q) of layer h with p in
   * `range`, as [c * m_r, range.count * m_h]. Above the diagonal (r <= h) the formula as written;
   * below it the same sums with the roles of the two layers' indices exchanged.
   */
  private pairBlock(r: number, h: number, i0: number, c: number, range: { first: number; count: number }): { block: Tensor2D; diagonal?: Tensor } {
    const { layers } = this.model;
    const lo = Math.min(r, h);
    const hi = Math.max(r, h);
    const { curvature, inputJacobian, diagonalJacobian } = this.factors.get(key(lo, hi))!;
    const [low, high] = [layers[lo], layers[hi]];
    const { batch } = high;
    const np = range.count;
    const picked = tf.slice(layers[r].inputAugT, [i0, 0], [c, batch]); // [c, B] rows of the block
    const columnInputs = tf.slice(layers[h].inputAugT, [range.first, 0], [np, batch]); // [np, B]
    /** E^{lo,hi} [B, m_lo, n_aug_hi] restricted to the hi-layer rows [first, first + count). */
    const jacobian = (first: number, count: number) =>
      count === high.inputsAug
        ? inputJacobian!
        : tf.reshape(tf.slice(tf.reshape(inputJacobian!, [batch, low.units, high.inputsAug]), [0, 0, first], [batch, low.units, count]), [batch, low.units * count]);
    if (r <= h) {
      // [(i, p), B] @ [B, (j, q)] -> (i, p, j, q) -> (i, j, p, q)
      let block = tf.transpose(tf.reshape(tf.matMul(khatriRao(picked, columnInputs), curvature), [c, np, low.units, high.units]), [0, 2, 1, 3]);
      if (inputJacobian) {
        // [(i, q), B] @ [B, (j, p)] -> (i, q, j, p) -> (i, j, p, q)
        const second = tf.reshape(tf.matMul(khatriRao(picked, high.deltaT), jacobian(range.first, np)), [c, high.units, low.units, np]);
        block = tf.add(block, tf.transpose(second, [0, 2, 3, 1]));
      }
      // [(i, q), B] @ [B, j] -> (i, q, j), the term's values at p = j (see addDiagonalTerm)
      const diagonal = diagonalJacobian ? tf.matMul(khatriRao(picked, high.deltaT), diagonalJacobian) : undefined;
      return { block: tf.reshape(block, [c * low.units, np * high.units]), diagonal };
    }
    // Rows in hi (p in the picked range, q), columns in lo (i in range, j).
    // [(p, i), B] @ [B, (j, q)] -> (p, i, j, q) -> (p, q, i, j)
    const first = tf.transpose(tf.reshape(tf.matMul(khatriRao(picked, columnInputs), curvature), [c, np, low.units, high.units]), [0, 3, 1, 2]);
    const block = (sum: Tensor) => tf.reshape(sum, [c * high.units, np * low.units]) as Tensor2D;
    // [(q, i), B] @ [B, j] -> (q, i, j), the term's values at p = j (see addDiagonalTerm)
    if (diagonalJacobian) return { block: block(first), diagonal: tf.matMul(khatriRao(high.deltaT, columnInputs), diagonalJacobian) };
    // [(q, i), B] @ [B, (j, p)] -> (q, i, j, p) -> (p, q, i, j)
    const second = tf.reshape(tf.matMul(khatriRao(high.deltaT, columnInputs), jacobian(i0, c)), [high.units, np, low.units, c]);
    return { block: block(tf.add(first, tf.transpose(second, [3, 0, 1, 2]))) };
  }

  /**
   * Adds the E-term of adjacent layers under an element-wise activation, where E = diag(f'), so that
   * it lives on p = j only: `diagonal` holds sum_b a_lo[b,i] g_hi[b,q] f'_lo[b,j] as (i, q, j) above the
   * diagonal (rows in lo) and as (q, i, j) below it (rows in hi); `values` is pairBlock's block.
   * Returns whether every sum it made is finite.
   */
  private addDiagonalTerm(values: Float32Array, stride: number, diagonal: Float32Array, r: number, h: number, i0: number, c: number, range: { first: number; count: number }): boolean {
    const low = this.model.layers[Math.min(r, h)];
    const mHi = this.model.layers[Math.max(r, h)].units;
    const mLo = low.units;
    let check = 0; // the sum (in float64) of the values changed: finite exactly when they all are
    if (r < h) {
      // rows (i, j), columns (p, q) with p = j in the column range
      for (let j = range.first; j < Math.min(range.first + range.count, mLo); j++) {
        for (let i = 0; i < c; i++) {
          const row = (i * mLo + j) * stride + (j - range.first) * mHi;
          for (let q = 0; q < mHi; q++) {
            values[row + q] += diagonal[(i * mHi + q) * mLo + j];
            check += values[row + q]; // the stored float32, which may have overflowed
          }
        }
      }
      return Number.isFinite(check);
    }
    // rows (p, q) with p in [i0, i0 + c), columns (i, j) with j = p
    for (let p = i0; p < Math.min(i0 + c, mLo); p++) {
      for (let q = 0; q < mHi; q++) {
        const row = ((p - i0) * mHi + q) * stride + p;
        for (let i = 0; i < range.count; i++) {
          values[row + i * mLo] += diagonal[(q * range.count + i) * mLo + p];
          check += values[row + i * mLo];
        }
      }
    }
    return Number.isFinite(check);
  }

  dispose(): void {
    tf.dispose(this.kept);
    this.kept.length = 0;
  }
}

/** `length` zeros: a view of `into` (zeroed: memset is cheaper than a new buffer's pages) when it is large enough, else a new array. */
function zeroedRows(length: number, into?: ArrayBuffer): Float32Array {
  return spareView(into, length)?.fill(0) ?? new Float32Array(length);
}

/** Rows of u [a, B] times rows of v [b, B], example by example: [(a, b), B]. */
const khatriRao = (u: Tensor2D, v: Tensor2D): Tensor2D => {
  const [a, batch] = u.shape;
  return tf.reshape(tf.mul(tf.expandDims(u, 1), tf.expandDims(v, 0)), [a * v.shape[0], batch]);
};

/** The l2 term 2 l2 on the diagonal of a regularized kernel's own columns; whether the sums are finite. */
function addRegularizer(out: Float32Array, width: number, tensor: ParameterTensor, block: RowBlock, columns: readonly ParameterTensor[], layer: DenseLayer): boolean {
  if (!layer.l2 || tensor.kind !== 'kernel' || !columns.some((t) => t.name === tensor.name)) return true;
  let check = 0;
  for (let d = 0; d < block.count; d++) {
    const at = d * width + tensor.offset + block.start + d;
    out[at] += 2 * layer.l2;
    check += out[at];
  }
  return Number.isFinite(check);
}

/**
 * A tensor's values for reading on the host right away (before the next TF.js op): a view into the wasm
 * heap where the backend offers one (a copy saved), a copy elsewhere (dataSync).
 */
function hostValues(t: Tensor): Float32Array {
  const backend = tf.backend() as unknown as { typedArrayFromHeap?: (t: Tensor) => Float32Array };
  return typeof backend.typedArrayFromHeap === 'function' ? backend.typedArrayFromHeap(t) : (t.dataSync() as Float32Array);
}
