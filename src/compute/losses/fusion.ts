import { activationRule } from '../activations/index.js';
import type { ActivationSpec, LossSpec } from '../spec.js';
import { lossRule } from './index.js';
import type { LossParams } from './rule.js';

/**
 * The output layer's activation and the loss's parameters as the engine computes them. A sigmoid or
 * softmax output whose probabilities go into the matching cross-entropy (binary, categorical, sparse)
 * is the same function as that cross-entropy on the output's logits; computed that way (as Keras does)
 * it stays exact and finite for confident predictions, where the probability rounds to 1 in float32 and
 * log(1 - p), 1 - p and p (1 - p) would be log 0 and 0. This is the one place that decides it (the
 * dense path and the graph engine both ask it).
 */
export function fusedOutput(loss: LossSpec, outputActivation: ActivationSpec): { outputActivation: ActivationSpec; loss: LossParams } {
  const rule = lossRule(loss.type);
  const fuses = !loss.fromLogits && rule.fusesWith !== undefined && activationRule(outputActivation.type).name === rule.fusesWith;
  return fuses ? { outputActivation: { type: 'linear' }, loss: { ...loss, fromLogits: true } } : { outputActivation, loss };
}
