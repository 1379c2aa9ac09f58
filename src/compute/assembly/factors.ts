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
  /**
   * For adjacent layers hi = lo + 1 under an element-wise activation, E^{lo,hi} = diag(f'_lo) (and 0 at the
   * bias input): f'_lo as [B, m_lo], with inputJacobian null. The term it makes is zero off p = j.
   */
  diagonalJacobian: Tensor2D | null;
}

/** [B, m, m]: the m unit directions of z-space for every example, written directly (tf.tile is slow on wasm). */
function unitDirections(batch: number, m: number): Tensor3D {
  const values = new Float32Array(batch * m * m);
  for (let b = 0; b < batch; b++) for (let j = 0; j < m; j++) values[(b * m + j) * m + j] = 1;
  return tf.tensor3d(values, [batch, m, m]);
}

/**
 * Computes the factors of every pair (lo, hi) of the selected layers with lo in `lows` (all by default);
 * `keep` marks what outlives the tidy.
 * For each selected lower layer lo, one R-operator sweep (as curvature.ts, in plain 2-D matMuls
 * [B * m_lo, width]) of the m_lo unit directions of z_lo: forward, R(a_{hi-1}) = E^{lo,hi}; through
 * the loss's curvature; backward, R(g_hi) = S^{lo,hi} for every hi >= lo.
 */
export function pairFactors(model: PreparedModel, selected: readonly number[], keep: <T extends Tensor>(t: T) => T, lows: readonly number[] = selected): Map<string, PairFactors> {
  const { layers, batch } = model;
  const top = layers.length - 1;
  const factors = new Map<string, PairFactors>();
  // One tidy per lower layer (those in `lows`): its sweep's intermediates go before the next sweep starts.
  for (const lo of lows) tf.tidy(() => sweep(lo));
  return factors;

  function sweep(lo: number): Tensor[] {
    const kept: Tensor[] = [];
    const hold = <T extends Tensor>(t: T): T => {
      kept.push(t);
      return keep(t);
    };
    const m = layers[lo].units;
    const rZ: Tensor3D[] = [];
    const rInputs: Tensor3D[] = [];
    rZ[lo] = unitDirections(batch, m);
    let rActivation = layers[lo].activation.jvp(rZ[lo]);
    for (let k = lo + 1; k <= top; k++) {
      rInputs[k] = rActivation;
      rZ[k] = layers[k].rForward(rActivation, null)!;
      rActivation = layers[k].activation.jvp(rZ[k]);
    }
    let rOutputGradient = model.lossState.hvp(rActivation);
    for (let k = top; k >= lo; k--) {
      const rGradient = layers[k].rDelta(rOutputGradient, rZ[k]); // R(g_k) = S^{lo,k}
      if (selected.includes(k)) {
        const width = layers[k].units;
        const derivative = k === lo + 1 ? layers[lo].activation.derivative : undefined;
        const diagonalJacobian = derivative ? hold(tf.reshape(derivative, [batch, m]) as Tensor2D) : null;
        const inputJacobian =
          k > lo && !derivative ? hold(tf.reshape(withBiasColumn(rInputs[k], layers[k]), [batch, m * layers[k].inputsAug]) as Tensor2D) : null;
        factors.set(key(lo, k), { curvature: hold(tf.reshape(rGradient, [batch, m * width]) as Tensor2D), inputJacobian, diagonalJacobian });
      }
      if (k > lo) rOutputGradient = layers[k].rBackward(rGradient, null);
    }
    return kept;
  }
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
