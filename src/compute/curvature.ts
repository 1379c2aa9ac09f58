import { BasisDirections, DenseDirections, type DirectionSeed } from './directions.js';
import { NumericalError } from './errors.js';
import type { PreparedModel } from './model.js';
import type { ParameterTensor } from './parameters.js';
import { tf, type Tensor3D } from './tf.js';

/**
 * 'hessian': every second-order term. 'ggn': the generalized Gauss-Newton J^T Λ J, J the Jacobian of the
 * last pre-activation: the same passes without the terms where the network itself curves (hidden
 * activations' f'', the parameter cross terms delta · V^T and R(a_in)^T delta), the regularizer kept.
 */
export type ProductKind = 'hessian' | 'ggn';

/**
 * Exact Hessian-vector products by the R-operator (Pearlmutter's forward-over-reverse), K directions
 * at a time: a forward pass of R(z), R(a) from the first layer the directions touch, the loss's
 * curvature at the output, then a backward pass of R(delta) that yields H v for every column tensor.
 * The full Hessian is this with unit vectors, P/K times. With kind 'ggn', Gauss-Newton-vector products.
 */
export function hessianVectorProducts(
  model: PreparedModel,
  seed: DirectionSeed,
  columns: readonly ParameterTensor[] = model.parameters,
  kind: ProductKind = 'hessian',
): Float32Array {
  const full = kind === 'hessian';
  const width = model.size; // columns not asked for stay 0
  const rows = new Float32Array(seed.count * width);
  const lowestColumnLayer = Math.min(...columns.map((t) => t.layer));
  tf.tidy(() => {
    const { layers } = model;
    const rInputs: (Tensor3D | null)[] = [];
    const rZ: (Tensor3D | null)[] = [];
    let rActivation: Tensor3D | null = null;
    for (let l = seed.firstLayer; l < layers.length; l++) {
      rInputs[l] = rActivation;
      rZ[l] = layers[l].rForward(rActivation, seed.inputTerm(l, layers[l]));
      rActivation = rZ[l] ? layers[l].activation.jvp(rZ[l]!) : null;
    }
    let rGradient = model.lossState.hvp(rActivation!);
    for (let l = layers.length - 1; l >= lowestColumnLayer; l--) {
      const layer = layers[l];
      // The last layer's activation belongs to Λ (the loss's curvature w.r.t. the logits) in both kinds.
      const rDelta = full || l === layers.length - 1 ? layer.rDelta(rGradient, rZ[l] ?? null) : layer.activation.vjp(rGradient);
      const layerColumns = columns.filter((t) => t.layer === l);
      if (layerColumns.length) {
        const needsInputTerm = layerColumns.some((t) => t.kind === 'kernel');
        const parts = layer.rowContributions(rDelta, full && needsInputTerm ? (rInputs[l] ?? null) : null);
        for (const t of layerColumns) placeColumns(rows, width, seed.count, t, layer.inputs, layer.units, parts);
      }
      if (l > lowestColumnLayer) rGradient = layer.rBackward(rDelta, full ? seed.outputTerm(l, layer) : null);
    }
  });
  seed.addRegularizer(rows, width, columns, model.layers);
  return rows;
}

/** Copies one tensor's columns of the K rows out of the layouts DenseLayer.rowContributions gives. */
export function placeColumns(
  rows: Float32Array,
  width: number,
  count: number,
  tensor: ParameterTensor,
  n: number,
  m: number,
  { fromDelta, fromInput }: { fromDelta: Float32Array; fromInput: Float32Array | null },
): void {
  const km = count * m;
  const kn = count * n;
  for (let d = 0; d < count; d++) {
    const rowStart = d * width + tensor.offset;
    if (tensor.kind === 'bias') {
      rows.set(fromDelta.subarray(n * km + d * m, n * km + d * m + m), rowStart);
      continue;
    }
    for (let i = 0; i < n; i++) {
      const src = i * km + d * m;
      rows.set(fromDelta.subarray(src, src + m), rowStart + i * m);
    }
    if (!fromInput) continue;
    // fromInput is contiguous along i: read it in that order, writing with the short stride m.
    for (let j = 0; j < m; j++) {
      const src = j * kn + d * n;
      for (let i = 0; i < n; i++) rows[rowStart + i * m + j] += fromInput[src + i];
    }
  }
}

/** A run of consecutive Hessian rows inside one parameter tensor. */
export interface RowBlock {
  /** Index into model.parameters. */
  tensor: number;
  /** First element of the tensor. */
  start: number;
  count: number;
  /** First row of the Hessian (= tensor offset + start). */
  row: number;
}

/**
 * Splits the P rows into blocks of at most `blockSize` that never straddle two tensors. With
 * `wholeRows`, a kernel's blocks are whole kernel rows (a multiple of its units, at least one row),
 * which the structured assembly computes without waste.
 */
export function planRowBlocks(parameters: readonly (Pick<ParameterTensor, 'shape' | 'size' | 'offset'> & { kind?: string })[], blockSize: number, wholeRows = false): RowBlock[] {
  const blocks: RowBlock[] = [];
  parameters.forEach((t, tensor) => {
    const units = t.shape[t.shape.length - 1];
    const step = wholeRows && t.kind === 'kernel' ? Math.max(1, Math.floor(blockSize / units)) * units : blockSize;
    for (let start = 0; start < t.size; start += step) {
      blocks.push({ tensor, start, count: Math.min(step, t.size - start), row: t.offset + start });
    }
  });
  return blocks;
}

/**
 * Rows [block.count x P] of the Hessian. With `upperOnly`, only the columns of tensors in the block's
 * layer and above are computed (the rest stay 0): by symmetry they are the rows of the lower layers'
 * directions at this block's columns, which a caller that keeps those rows can copy instead. That
 * spares the backward pass below the block's layer, about a third of the work for a 3-layer MLP.
 */
export function hessianRows(model: PreparedModel, block: RowBlock, upperOnly = false): Float32Array {
  const tensor = model.parameters[block.tensor];
  const seed = new BasisDirections(tensor, block.start, block.count, model.layers[tensor.layer]);
  const columns = upperOnly ? model.parameters.filter((t) => t.layer >= tensor.layer) : model.parameters;
  return finiteRows(hessianVectorProducts(model, seed, columns), block);
}

/** The block's rows, or a NumericalError when any is not finite (whichever path computed them). */
export function finiteRows(rows: Float32Array, block: RowBlock): Float32Array {
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i])) throw new NumericalError(`Hessian rows ${block.row}..${block.row + block.count - 1} are not finite on this data`);
  }
  return rows;
}

/** H V (or G V for kind 'ggn') for K arbitrary directions V [K x P] (row-major) over the selected parameters. */
export function hessianTimes(model: PreparedModel, vectors: Float32Array, count: number, kind: ProductKind = 'hessian'): Float32Array {
  return hessianVectorProducts(model, new DenseDirections(vectors, count, model.parameters, model.layers), model.parameters, kind);
}
