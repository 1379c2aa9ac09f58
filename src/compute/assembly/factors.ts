import type { DenseLayer } from '../layers/dense.js';
import type { PreparedModel } from '../model.js';
import { tf, type Tensor, type Tensor2D, type Tensor3D } from '../tf.js';

/**
 * The per-example factors of the structured Hessian (see assembly/index.ts), for a pair of layers
 * lo <= hi of a sequential dense stack, all [B, ...] with the batch first:
 *  - S^{lo,hi}[b, j, q] = d g_hi[q] / d z_lo[j], as [B, m_lo * m_hi] (g = dL/dz, which carries the 1/B);
 *  - E^{lo,hi}[b, j, p] = d a_aug_{hi-1}[p] / d z_lo[j], as [B, m_lo * n_aug_hi] with a zero column for
 *    the bias's constant input; null when lo = hi (a layer's own input does not depend on its weights).
 * They come from the activation and loss rules' own jvp / vjp / curvature / hvp, applied to the m unit
 * directions in z-space, so every activation (softmax in a hidden layer too) and loss is exact here.
 */
export interface PairFactors {
  curvature: Tensor2D;
  inputJacobian: Tensor2D | null;
}

/** [B, m, m]: the m unit directions of z-space for every example. */
const unitDirections = (batch: number, m: number): Tensor3D =>
  tf.broadcastTo(tf.reshape(tf.eye(m), [1, m, m]), [batch, m, m]) as Tensor3D;

/** Per-example batched product [B, K, m] @ [B, m, m]. */
const perExample = (left: Tensor3D, right: Tensor3D): Tensor3D => tf.matMul(left, right) as Tensor3D;

/** Floats the factors of `layers` (the selected ones) take, for the memory check before computing them. */
export function factorFloats(model: PreparedModel, selected: readonly number[]): number {
  const { layers, batch } = model;
  const lowest = Math.min(...selected);
  let floats = 0;
  // S^{k,k} for every layer from the lowest selected one up (the recursion runs through them), plus
  // the unit directions and one temporary of that size while it runs.
  for (let k = lowest; k < layers.length; k++) floats += 3 * batch * layers[k].units ** 2;
  for (const lo of selected) {
    for (const hi of selected) if (hi > lo) floats += batch * layers[lo].units * (layers[hi].units + layers[hi].inputsAug);
    // the forward sweep's tensors from lo up
    for (let k = lo + 1; k < layers.length; k++) floats += 2 * batch * layers[lo].units * Math.max(layers[k].units, layers[k].inputsAug);
  }
  return floats;
}

/**
 * Computes the factors of every pair of the selected layers. `keep` marks what outlives the tidy.
 * S^{k,k} by the backward recursion S^{L-1} = curvature of the loss through the last activation,
 * S^{k} = (vjp_k + curvature_k) of (W_{k+1} S^{k+1} W_{k+1}^T along J_k); then, from each lower layer lo,
 * a forward sweep of the unit directions gives dz_hi/dz_lo (so S^{lo,hi} = dz_hi/dz_lo S^{hi}) and
 * the inputs' Jacobians E^{lo,hi}.
 */
export function pairFactors(model: PreparedModel, selected: readonly number[], keep: <T extends Tensor>(t: T) => T): Map<string, PairFactors> {
  const { layers, batch } = model;
  const lowest = Math.min(...selected);
  const top = layers.length - 1;
  const own: Tensor3D[] = [];
  const identities: Tensor3D[] = [];
  for (let k = top; k >= lowest; k--) {
    const layer = layers[k];
    identities[k] = unitDirections(batch, layer.units);
    const rActivation = layer.activation.jvp(identities[k]);
    const rOutputGradient =
      k === top
        ? model.lossState.hvp(rActivation)
        : layers[k + 1].rBackward(perExample(layers[k + 1].rForward(rActivation, null)!, own[k + 1]), null);
    own[k] = layer.rDelta(rOutputGradient, identities[k]);
  }
  const factors = new Map<string, PairFactors>();
  for (const lo of selected) {
    const m = layers[lo].units;
    factors.set(key(lo, lo), { curvature: keep(tf.reshape(own[lo], [batch, m * m]) as Tensor2D), inputJacobian: null });
    const highest = Math.max(...selected);
    let rActivation = layers[lo].activation.jvp(identities[lo]);
    for (let hi = lo + 1; hi <= highest; hi++) {
      const rZ = layers[hi].rForward(rActivation, null)!; // [B, m_lo, m_hi]
      if (selected.includes(hi)) {
        const curvature = tf.reshape(perExample(rZ, own[hi]), [batch, m * layers[hi].units]) as Tensor2D;
        const inputJacobian = tf.reshape(withBiasColumn(rActivation, layers[hi]), [batch, m * layers[hi].inputsAug]) as Tensor2D;
        factors.set(key(lo, hi), { curvature: keep(curvature), inputJacobian: keep(inputJacobian) });
      }
      rActivation = layers[hi].activation.jvp(rZ);
    }
  }
  return factors;
}

export const key = (lo: number, hi: number) => `${lo},${hi}`;

/** Appends the zero derivative of the bias's constant input 1 to [B, K, n]. */
function withBiasColumn(t: Tensor3D, layer: DenseLayer): Tensor3D {
  if (layer.inputsAug === layer.inputs) return t;
  return tf.pad(t, [
    [0, 0],
    [0, 0],
    [0, 1],
  ]) as Tensor3D;
}
