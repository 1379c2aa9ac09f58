import type { Keep } from '../../activations/rule.js';
import { tf, type Tensor } from '../../tf.js';

/** One term of an output: input index and weight. */
export type Entry = [index: number, weight: number];

/**
 * A fixed sparse linear map from rows [M, inSize] to rows [M, outSize], output o = Σ w · input[i] over
 * its entries, for any number M of rows (examples, or directions times examples): one gather from the
 * input with a zero column appended (absent slots and padding point there), a product by the weights
 * and a sum over the slots; the transpose is built the same way from the same entries. This is how
 * pooling, its routing and conv2d's patches (im2col) run on every backend, wasm included (which has no
 * scatter-add, Conv2DBackpropFilter or Einsum).
 */
export class SparseMap {
  private constructor(
    private readonly forwardPlan: GatherPlan,
    private readonly transposePlan: GatherPlan,
  ) {}

  /** `entries(o)` lists output o's terms; weights of 1 everywhere skip the product. */
  static build(inSize: number, outSize: number, entries: (o: number) => Entry[], keep: Keep): SparseMap {
    const lists = Array.from({ length: outSize }, (_, o) => entries(o));
    const transposed: Entry[][] = Array.from({ length: inSize }, () => []);
    lists.forEach((list, o) => list.forEach(([i, w]) => transposed[i].push([o, w])));
    return new SparseMap(GatherPlan.of(lists, inSize, keep), GatherPlan.of(transposed, outSize, keep));
  }

  apply(x: Tensor): Tensor {
    return this.forwardPlan.run(x);
  }

  transpose(g: Tensor): Tensor {
    return this.transposePlan.run(g);
  }
}

class GatherPlan {
  private constructor(
    private readonly index: Tensor,
    private readonly weights: Tensor | null,
    private readonly slots: number,
    private readonly outputs: number,
  ) {}

  /** lists[o]: the terms of output o over `sources` inputs (index `sources` is the zero column). */
  static of(lists: Entry[][], sources: number, keep: Keep): GatherPlan {
    const slots = Math.max(1, ...lists.map((l) => l.length));
    const index = new Int32Array(lists.length * slots).fill(sources);
    const weights = new Float32Array(lists.length * slots);
    let unit = true;
    lists.forEach((list, o) =>
      list.forEach(([i, w], s) => {
        index[o * slots + s] = i;
        weights[o * slots + s] = w;
        unit &&= w === 1;
      }),
    );
    const weightTensor = unit ? null : keep(tf.tensor2d(weights, [lists.length, slots]));
    return new GatherPlan(keep(tf.tensor1d(index, 'int32')), weightTensor, slots, lists.length);
  }

  /** x [M, sources] -> [M, outputs]. */
  run(x: Tensor): Tensor {
    const rows = x.shape[0];
    const padded = tf.pad(x, [
      [0, 0],
      [0, 1],
    ]);
    const gathered = tf.gather(padded, this.index, 1);
    if (this.slots === 1 && !this.weights) return gathered;
    let terms = tf.reshape(gathered, [rows, this.outputs, this.slots]);
    if (this.weights) terms = tf.mul(terms, this.weights);
    return tf.sum(terms, 2);
  }
}

/** Output size and padding before the first row/column of a window sweep, as TensorFlow computes them. */
export function sweep(size: number, window: number, stride: number, padding: 'valid' | 'same'): { out: number; before: number } {
  if (padding === 'valid') return { out: Math.max(0, Math.ceil((size - window + 1) / stride)), before: 0 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + window - size, 0);
  return { out, before: Math.floor(total / 2) }; // the odd one goes after (TF's asymmetric SAME)
}

export interface Window2d {
  height: number;
  width: number;
  channels: number;
  size: [number, number];
  strides: [number, number];
  padding: 'valid' | 'same';
}

/** The output's height and width and, per output cell, the in-bounds input cells of its window (row-major). */
export function windows({ height, width, size, strides, padding }: Window2d) {
  const rows = sweep(height, size[0], strides[0], padding);
  const columns = sweep(width, size[1], strides[1], padding);
  /** Input (row, column) of window offset (di, dj) at output (i, j), or null in the padding. */
  const cell = (i: number, j: number, di: number, dj: number): [number, number] | null => {
    const r = i * strides[0] + di - rows.before;
    const c = j * strides[1] + dj - columns.before;
    return r >= 0 && r < height && c >= 0 && c < width ? [r, c] : null;
  };
  return { outHeight: rows.out, outWidth: columns.out, cell };
}
