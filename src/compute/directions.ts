import type { DenseLayer } from './layers/dense.js';
import type { ParameterTensor } from './parameters.js';
import { tf, type Tensor3D } from './tf.js';

/**
 * K directions v in parameter space, as the curvature pass needs them: per layer, the two terms that
 * v adds to the R-operator, a_aug · V (into R(z)) and delta · V^T (into R(dL/d input)), and the
 * regularizer's 2 l2 v. `firstLayer` is the lowest layer where v is nonzero: every layer below it
 * keeps R(z) = 0 in the forward pass.
 */
export interface DirectionSeed {
  readonly count: number;
  readonly firstLayer: number;
  inputTerm(l: number, layer: DenseLayer): Tensor3D | null;
  outputTerm(l: number, layer: DenseLayer): Tensor3D | null;
  /** Adds 2 l2 V (on regularized kernels) to rows [count x columns] laid out by `tensors`. */
  addRegularizer(rows: Float32Array, columns: number, tensors: readonly ParameterTensor[], layers: readonly DenseLayer[]): void;
}

/** Where a direction sits in its layer's augmented kernel [n(+1), m] (row n is the bias). */
const augmentedIndex = (tensor: ParameterTensor, layer: DenseLayer, element: number) =>
  (tensor.kind === 'bias' ? layer.inputs * layer.units : 0) + element;

/**
 * The unit vectors e_j for `count` consecutive elements of one tensor: the rows of the Hessian.
 * a_aug · V is then one column of a_aug placed at one unit, built by a gather and a one-hot product
 * instead of a matMul.
 */
export class BasisDirections implements DirectionSeed {
  readonly firstLayer: number;
  private readonly rowIndex: Int32Array;
  private readonly unitIndex: Int32Array;

  constructor(
    private readonly tensor: ParameterTensor,
    private readonly start: number,
    readonly count: number,
    layer: DenseLayer,
  ) {
    this.firstLayer = tensor.layer;
    this.rowIndex = new Int32Array(count);
    this.unitIndex = new Int32Array(count);
    for (let d = 0; d < count; d++) {
      const q = augmentedIndex(tensor, layer, start + d);
      this.rowIndex[d] = Math.floor(q / layer.units);
      this.unitIndex[d] = q % layer.units;
    }
  }

  private oneHot(indices: Int32Array, depth: number): Tensor3D {
    const values = new Float32Array(this.count * depth);
    indices.forEach((index, d) => {
      if (index < depth) values[d * depth + index] = 1;
    });
    return tf.tensor3d(values, [1, this.count, depth]);
  }

  inputTerm(l: number, layer: DenseLayer): Tensor3D | null {
    if (l !== this.firstLayer) return null;
    const picked = tf.gather(layer.inputAug, tf.tensor1d(this.rowIndex, 'int32'), 1); // [B, K]
    return tf.mul(tf.expandDims(picked, 2), this.oneHot(this.unitIndex, layer.units)) as Tensor3D;
  }

  outputTerm(l: number, layer: DenseLayer): Tensor3D | null {
    if (l !== this.firstLayer || this.tensor.kind === 'bias') return null;
    const picked = tf.gather(layer.delta, tf.tensor1d(this.unitIndex, 'int32'), 1); // [B, K]
    return tf.mul(tf.expandDims(picked, 2), this.oneHot(this.rowIndex, layer.inputs)) as Tensor3D;
  }

  addRegularizer(rows: Float32Array, columns: number, tensors: readonly ParameterTensor[], layers: readonly DenseLayer[]): void {
    const l2 = layers[this.tensor.layer].l2;
    const column = tensors.find((t) => t.name === this.tensor.name);
    if (!l2 || this.tensor.kind !== 'kernel' || !column) return;
    for (let d = 0; d < this.count; d++) rows[d * columns + column.offset + this.start + d] += 2 * l2;
  }
}

/**
 * Arbitrary directions V [K, P] over the selected tensors (row-major), for Hessian-vector products:
 * a_aug · V_l and delta · V_l^T are plain matMuls against V_l laid out as [n(+1), K*m] and [m, K*n].
 */
export class DenseDirections implements DirectionSeed {
  readonly firstLayer: number;
  private readonly forward = new Map<number, { values: Float32Array; rows: number }>();
  private readonly backward = new Map<number, Float32Array>();

  constructor(
    private readonly vectors: Float32Array,
    readonly count: number,
    private readonly tensors: readonly ParameterTensor[],
    layers: readonly DenseLayer[],
  ) {
    const size = vectors.length / count;
    this.firstLayer = Math.min(...tensors.map((t) => t.layer));
    for (const t of tensors) {
      const layer = layers[t.layer];
      const { inputs: n, units: m } = layer;
      const km = count * m;
      if (!this.forward.has(t.layer)) this.forward.set(t.layer, { values: new Float32Array(layer.inputsAug * km), rows: layer.inputsAug });
      const fwd = this.forward.get(t.layer)!.values;
      if (t.kind === 'kernel' && !this.backward.has(t.layer)) this.backward.set(t.layer, new Float32Array(m * count * n));
      const bwd = this.backward.get(t.layer);
      for (let d = 0; d < count; d++) {
        for (let e = 0; e < t.size; e++) {
          const v = vectors[d * size + t.offset + e];
          const q = augmentedIndex(t, layer, e);
          const i = Math.floor(q / m);
          const k = q % m;
          fwd[i * km + d * m + k] = v;
          if (t.kind === 'kernel') bwd![k * count * n + d * n + i] = v;
        }
      }
    }
  }

  inputTerm(l: number, layer: DenseLayer): Tensor3D | null {
    const v = this.forward.get(l);
    if (!v) return null;
    const product = tf.matMul(layer.inputAug, tf.tensor2d(v.values, [v.rows, this.count * layer.units]));
    return tf.reshape(product, [layer.batch, this.count, layer.units]) as Tensor3D;
  }

  outputTerm(l: number, layer: DenseLayer): Tensor3D | null {
    const v = this.backward.get(l);
    if (!v) return null;
    const product = tf.matMul(layer.delta, tf.tensor2d(v, [layer.units, this.count * layer.inputs]));
    return tf.reshape(product, [layer.batch, this.count, layer.inputs]) as Tensor3D;
  }

  addRegularizer(rows: Float32Array, columns: number, tensors: readonly ParameterTensor[], layers: readonly DenseLayer[]): void {
    const size = this.vectors.length / this.count;
    for (const t of tensors) {
      const l2 = layers[t.layer].l2;
      const source = this.tensors.find((s) => s.name === t.name);
      if (!l2 || t.kind !== 'kernel' || !source) continue;
      for (let d = 0; d < this.count; d++) {
        for (let e = 0; e < t.size; e++) rows[d * columns + t.offset + e] += 2 * l2 * this.vectors[d * size + source.offset + e];
      }
    }
  }
}
