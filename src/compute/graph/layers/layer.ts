/**
 * The contract every layer of the graph engine fulfils (BackPACK-style: one module per layer, each
 * giving only its own first-order rules, and second-order ones only where they are not zero).
 *
 * A layer definition gives
 *   - `shapes`: its output shape and the shape of each weight, from its config and its inputs' shapes
 *     (no tensors; the cost estimate and the checks use this), throwing LayerError on a mismatch;
 *   - `prepare`: its forward pass on one batch, returning a PreparedLayer.
 * A PreparedLayer holds the direction-independent tensors and gives the four passes the curvature
 * needs: forward (its output), backward (dL/d inputs and dL/d weights from dL/d output), and the
 * R-operator's forward R(y) and backward R(dL/dx), R(dL/dW) (Pearlmutter's forward-over-reverse).
 *
 * Directional tensors carry K directions as a leading axis: [K, B, ...shape] for a node's values,
 * [K, ...weight shape] for weights; the prepared values are [B, ...] (they broadcast against [K, B, ...]).
 * `null` stands for an exact zero (a node that is no descendant of the directions' nodes), so no work is
 * spent there.
 *
 * The R-operator terms are written once, here, for the two families most layers belong to:
 *   - linear layers (y = A x, A fixed: flatten, reshape, dropout, add, concatenate, average and global
 *     pooling; max pooling with its argmax routing fixed, which is exact because max pooling is piecewise
 *     linear: its second derivative is zero) give only `apply` and its transpose;
 *   - bilinear layers (y = B(x, W): dense, conv2d, batch normalization's scale, embedding's one-hot
 *     product) give `apply`, and the transposes B_x^T and B_W^T; the base adds the bias and derives every
 *     term: R(y) = B(R x, W) + B(x, V), R(dL/dx) = B_x^T(R g, W) + B_x^T(g, V), R(dL/dW) = B_W^T(x, R g)
 *     + B_W^T(R x, g).
 * Either family may end in an element-wise (or softmax) activation; its f' and f'' come from the
 * activation rules of compute/activations (see ./activation-stage.ts). Layers that fit neither family
 * (multiply of several inputs) write the four passes themselves.
 *
 * The rule that makes the Gauss-Newton and Fisher products possible without a flag in any layer: in
 * rBackward, every term where the network itself curves (an activation's f'', a bilinear layer's cross
 * terms B_x^T(g, V) and B_W^T(R x, g), multiply's R(x_j) g) reads the R-forward pass (`forward`,
 * `rInputs` or `v`), and the first-order transposes read only R(g). So `secondOrderView` switches the
 * curvature terms off for all layers at once, by what it hands over.
 */
import type { Keep } from '../../activations/rule.js';
import type { ActivationSpec, LayerType, NodeSpec, WeightName } from '../../spec.js';
import { tf, type Tensor } from '../../tf.js';
import { ActivationStage } from './activation-stage.js';

export type NodeOf<T extends LayerType> = Extract<NodeSpec, { type: T }>;

/** A problem with one layer; the graph turns it into a SpecError naming the layer and its field. */
export class LayerError extends Error {}

/** Shapes without the batch axis. */
export interface LayerShapes {
  output: number[];
  weights: Partial<Record<WeightName, number[]>>;
}

export type Weights = Partial<Record<WeightName, Tensor>>;
/** Directions on a layer's weights, [K, ...weight shape]; absent where zero. */
export type WeightDirections = Partial<Record<WeightName, Tensor>>;

export interface PrepareContext {
  keep: Keep;
  /** The activation to apply instead of the config's (the fused output, see losses/fusion.ts). */
  activation?: ActivationSpec;
}

export interface LayerDefinition<T extends LayerType = LayerType> {
  type: T;
  shapes(node: NodeOf<T>, inputShapes: number[][]): LayerShapes;
  prepare(node: NodeOf<T>, inputs: Tensor[], weights: Weights, context: PrepareContext): PreparedLayer;
}

/** What a pass must produce: input gradients only where something below needs them, and these weights' rows. */
export interface Wanted {
  inputs: boolean;
  weights: readonly WeightName[];
}

/** The R-forward result a layer hands back to its own rBackward (e.g. R(z) before an activation). */
export interface RForward {
  output: Tensor | null;
  preActivation?: Tensor | null;
}

export interface RBackward {
  inputs: (Tensor | null)[];
  weights: Partial<Record<WeightName, Tensor | null>>;
}

export interface PreparedLayer {
  /** [B, ...output shape]. */
  readonly output: Tensor;
  /** dL/d inputs ([B, ...], null for an input that is not differentiable) and dL/d weights. Called once. */
  backward(g: Tensor): { inputs: (Tensor | null)[]; weights: Weights };
  rForward(rInputs: (Tensor | null)[], v: WeightDirections): RForward;
  /**
   * rg: R(dL/d output) [K, B, ...] or null; forward, rInputs and v as rForward had and gave them (or as
   * secondOrderView passes them on). Only the second-order terms may read forward, rInputs and v.
   */
  rBackward(rg: Tensor | null, forward: RForward, rInputs: (Tensor | null)[], v: WeightDirections, wanted: Wanted): RBackward;
}

/**
 * The second-order terms an R-backward adds: 'all' (the Hessian); 'activation', only the curvature of
 * the node's own activation (the GGN's output node, whose activation belongs to Λ); 'none', none at all:
 * the pass is then Jᵀ R(g) (the GGN below its output, and any plain backward pass of K gradients).
 */
export type SecondOrder = 'all' | 'activation' | 'none';

/** What rBackward gets of the R-forward pass for `secondOrder` (see the contract above): zeros (null, {}) where switched off. */
export function secondOrderView(
  secondOrder: SecondOrder,
  forward: RForward | null,
  rInputs: (Tensor | null)[],
  v: WeightDirections,
): { forward: RForward; rInputs: (Tensor | null)[]; v: WeightDirections } {
  if (secondOrder === 'all') return { forward: forward ?? { output: null }, rInputs, v };
  return { forward: { output: null, preActivation: secondOrder === 'activation' ? (forward?.preActivation ?? null) : null }, rInputs: rInputs.map(() => null), v: {} };
}

/** a + b where null is zero. */
export function plus(a: Tensor | null, b: Tensor | null): Tensor | null {
  if (a && b) return tf.add(a, b);
  return a ?? b;
}

export const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Directions of one input or none: K from whichever is present. */
export const directionCount = (tensors: readonly (Tensor | null | undefined)[]): number => tensors.find((t) => t)?.shape[0] ?? 0;

/** y = A x, A fixed (no weights): apply to [M, ...] inputs for any leading M, and the transpose. */
export interface LinearOps {
  /** xs: one tensor per input, each [M, ...input shape] for the same M; returns [M, ...output shape]. */
  apply(xs: Tensor[]): Tensor;
  /** g [M, ...output shape] -> one [M, ...input shape] per input. */
  transpose(g: Tensor): Tensor[];
}

/**
 * A linear layer, then an optional activation. With inputs x_i of shapes s_i, the R-forward applies A
 * to the R(x_i) (zeros for the absent ones), the R-backward its transpose to R(delta).
 */
export function linearLayer(inputs: Tensor[], ops: LinearOps, activation: ActivationSpec | null, keep: Keep): PreparedLayer {
  const pre = ops.apply(inputs);
  const stage = activation ? ActivationStage.create(pre, activation, keep) : null;
  const output = stage ? stage.output : keep(pre);
  return {
    output,
    backward(g) {
      return { inputs: ops.transpose(stage ? stage.backward(g) : g), weights: {} };
    },
    rForward(rInputs) {
      const k = directionCount(rInputs);
      if (!k) return { output: null };
      const filled = rInputs.map((r, i) => r ?? tf.zeros([k, ...inputs[i].shape]));
      const rz = tf.reshape(ops.apply(filled.map(joinDirections)), [k, ...pre.shape]);
      return { output: stage ? stage.jvp(rz) : rz, preActivation: rz };
    },
    rBackward(rg, forward, _rInputs, _v, wanted) {
      const rDelta = stage ? stage.rDelta(rg, forward.preActivation ?? null) : rg;
      if (!rDelta || !wanted.inputs) return { inputs: inputs.map(() => null), weights: {} };
      const k = rDelta.shape[0];
      return { inputs: ops.transpose(joinDirections(rDelta)).map((r, i) => tf.reshape(r, [k, ...inputs[i].shape])), weights: {} };
    },
  };
}

/** [K, B, ...] -> [K*B, ...]: directions as extra examples, for ops that act example by example. */
export const joinDirections = (t: Tensor): Tensor => tf.reshape(t, [-1, ...t.shape.slice(2)]);

/**
 * y = B(x, W), bilinear. Every tensor has a leading direction axis: x [Kx, B, ...in], w [Kw, ...W],
 * g [Kg, B, ...out]; one of the two K is 1 (the prepared side) and the result has the other.
 */
export interface BilinearOps {
  apply(x: Tensor, w: Tensor): Tensor;
  /**
   * apply(x, V) for unit directions V (x prepared, [1, B, ...]): the k-th direction is 1 at flat weight
   * index units[k]. Optional: a gather instead of a product with K mostly-zero weights (the rows of the Hessian).
   */
  applyUnits?(x: Tensor, units: Int32Array, weightShape: number[]): Tensor;
  /** B_x^T(g, W): [K, B, ...in]. */
  transposeInput(g: Tensor, w: Tensor): Tensor;
  /** B_W^T(x, g), summed over the batch: [K, ...W]. */
  transposeWeight(x: Tensor, g: Tensor): Tensor;
}

export interface BilinearParts {
  ops: BilinearOps;
  /** The value of x in B(x, W) ([B, ...]); R(x) is the input's R (x may be an affine image of the input, e.g. x - mean). */
  x: Tensor;
  /** Whether dL/d input exists (not for integer ids). */
  differentiableInput: boolean;
  /** W: its name when it is a weight (null for a constant such as batch normalization's absent scale), its value [...W]. */
  weight: { name: WeightName | null; value: Tensor };
  /** b added over the last axis, [channels], or null. */
  bias: { name: WeightName; value: Tensor } | null;
  activation: ActivationSpec | null;
}

/** Sums [K, B, ..., C] over every axis but the first and last: a bias's gradient per direction. */
const sumToChannels = (t: Tensor): Tensor => (t.rank > 2 ? tf.sum(t, [...Array(t.rank - 2).keys()].map((a) => a + 1)) : t);

export function bilinearLayer(parts: BilinearParts, keep: Keep): PreparedLayer {
  const { ops, weight, bias } = parts;
  const x = keep(tf.expandDims(parts.x, 0));
  const w = tf.expandDims(weight.value, 0);
  keep(w);
  let pre = tf.squeeze(ops.apply(x, w), [0]);
  if (bias) pre = tf.add(pre, bias.value);
  const stage = parts.activation ? ActivationStage.create(pre, parts.activation, keep) : null;
  const output = stage ? stage.output : keep(pre);
  let delta: Tensor | null = null; // dL/dz, [1, B, ...out], set by backward()
  return {
    output,
    backward(g) {
      delta = keep(tf.expandDims(stage ? stage.backward(g) : g, 0));
      const weights: Weights = {};
      if (weight.name) weights[weight.name] = tf.squeeze(ops.transposeWeight(x, delta), [0]);
      if (bias) weights[bias.name] = tf.squeeze(sumToChannels(delta), [0]);
      return { inputs: [parts.differentiableInput ? tf.squeeze(ops.transposeInput(delta, w), [0]) : null], weights };
    },
    rForward([rInput], v) {
      const vw = weight.name ? v[weight.name] : undefined;
      const vb = bias ? v[bias.name] : undefined;
      const units = vw ? unitIndices.get(vw) : undefined;
      const fromV = vw ? (units && ops.applyUnits ? ops.applyUnits(x, units, weight.value.shape) : ops.apply(x, vw)) : null;
      let rz = plus(rInput ? ops.apply(rInput, w) : null, fromV);
      if (vb) {
        const k = vb.shape[0];
        const broadcastable = tf.reshape(vb, [k, ...Array(pre.rank - 1).fill(1), vb.shape[1]]);
        rz = rz ? tf.add(rz, broadcastable) : tf.add(tf.zeros([k, ...pre.shape]), broadcastable);
      }
      if (!rz) return { output: null };
      return { output: stage ? stage.jvp(rz) : rz, preActivation: rz };
    },
    rBackward(rg, forward, [rInput], v, wanted) {
      const vw = weight.name ? v[weight.name] : undefined;
      const rDelta = stage ? stage.rDelta(rg, forward.preActivation ?? null) : rg;
      const result: RBackward = { inputs: [null], weights: {} };
      if (wanted.inputs && parts.differentiableInput) {
        result.inputs[0] = plus(rDelta ? ops.transposeInput(rDelta, w) : null, vw ? ops.transposeInput(delta!, vw) : null);
      }
      if (weight.name && wanted.weights.includes(weight.name)) {
        result.weights[weight.name] = plus(rDelta ? ops.transposeWeight(x, rDelta) : null, rInput ? ops.transposeWeight(rInput, delta!) : null);
      }
      if (bias && wanted.weights.includes(bias.name) && rDelta) result.weights[bias.name] = sumToChannels(rDelta);
      return result;
    },
  };
}

/** A layer y = f(B(x, kernel) + bias) (dense, conv2d): its kernel, optional bias and activation (or the fused output's). */
export function kernelLayer(ops: BilinearOps, input: Tensor, weights: Weights, activation: ActivationSpec, keep: Keep): PreparedLayer {
  return bilinearLayer(
    {
      ops,
      x: input,
      differentiableInput: true,
      weight: { name: 'kernel', value: weights.kernel! },
      bias: weights.bias ? { name: 'bias', value: weights.bias } : null,
      activation,
    },
    keep,
  );
}

const unitIndices = new WeakMap<Tensor, Int32Array>();

/** Marks K directions [K, ...W] as unit vectors at these flat indices of W, so that layers may gather instead of multiply. */
export function markUnits<T extends Tensor>(directions: T, units: Int32Array): T {
  unitIndices.set(directions, units);
  return directions;
}

/** [K, N] columns of `rows` [N, width] at `columns`, each placed at its `at` index of a last axis of `depth`: [K, N, depth]. */
export function placeColumns(rows: Tensor, columns: Int32Array, at: Int32Array, depth: number): Tensor {
  const picked = tf.transpose(tf.gather(rows, tf.tensor1d(columns, 'int32'), 1)); // [K, N]
  const place = tf.expandDims(oneHotFloat(at, depth), 1); // [K, 1, depth]
  return tf.mul(tf.expandDims(picked, 2), place);
}

/** One-hot rows [indices.length, depth] as float32, made on the host (wasm's OneHot writes integer bits for a float dtype). */
export function oneHotFloat(indices: ArrayLike<number>, depth: number): Tensor {
  const values = new Float32Array(indices.length * depth);
  for (let k = 0; k < indices.length; k++) values[k * depth + indices[k]] = 1;
  return tf.tensor2d(values, [indices.length, depth]);
}

/** A K-leading matMul: a [Ka, n, p] @ b [Kb, p, q] (or with transposes), one of Ka, Kb being 1. */
export const matMulK = (a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor =>
  tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, transposeA, transposeB);
