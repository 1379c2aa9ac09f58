import type { Keep } from '../activations/rule.js';
import type { Tensor2D, Tensor3D } from '../tf.js';

/** How a loss reads `data.y`: one row of m targets per example, or one integer class per example. */
export type TargetKind = 'dense' | 'labels';

export interface LossParams {
  fromLogits?: boolean;
  delta?: number;
}

/**
 * A loss evaluated on the model output a [B, m] and targets y [B, m]; it is the mean over the batch
 * of the per-example loss, so `gradient` and `hvp` already carry the 1/B.
 */
export interface LossState {
  /** Scalar loss (without regularizers). */
  value: number;
  /** dL/da [B, m]. */
  gradient: Tensor2D;
  /** (d2L/da2) R(a) for K directions per example: [B, K, m] -> [B, K, m]. */
  hvp(ra: Tensor3D): Tensor3D;
}

export interface LossRule {
  name: string;
  aliases: string[];
  targets: TargetKind;
  /** Whether `fromLogits` means anything for this loss. */
  takesLogits: boolean;
  apply(output: Tensor2D, y: Tensor2D, params: LossParams, keep: Keep): LossState;
}
