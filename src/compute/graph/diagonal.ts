import { activationRule } from '../activations/index.js';
import { fusedOutput } from '../losses/fusion.js';
import type { MatrixKind } from '../operators/operator.js';
import type { EngineRequest } from '../spec.js';
import type { GraphStructure } from './structure.js';

/**
 * How the graph engine computes an exact diagonal of M, each way a sum of squares (or of products) of
 * backward-pass results, none building M:
 * - 'examples' (the Fisher): (1/B) Σ_b g_b², a backward direction per example (its own gradient);
 * - 'logits' (the GGN, when the output node's output is the logits): Σ_b Σ_jk Λ_b[j,k] (J_bᵀe_j) ⊙ (J_bᵀe_k)
 *   (+ 2 l2 on regularized kernels), a backward direction per example and logit, then B m² P host work;
 * - 'units' (the Hessian, and any other GGN): M times blocks of unit directions, one per parameter, each
 *   keeping its own entry (a forward and a backward pass each).
 */
export type DiagonalMethod = 'examples' | 'logits' | 'units';

/** Above this many logits, the B m² P host work of the 'logits' way is not worth it. */
const MAX_LOGITS = 64;

/** The way a diagonal is computed and how many directions its passes carry in all (admission counts them as products). */
export function diagonalPlan(request: EngineRequest, structure: GraphStructure, kind: MatrixKind): { method: DiagonalMethod; directions: number } {
  const batch = request.data.x.shape[0];
  const size = structure.selected.reduce((n, t) => n + t.size, 0);
  if (kind === 'fisher') return { method: 'examples', directions: batch };
  const logits = batch * structure.units;
  if (kind === 'ggn' && structure.units <= MAX_LOGITS && logits < size && logitsAtOutput(request, structure)) return { method: 'logits', directions: logits };
  return { method: 'units', directions: size };
}

/** Whether the output node applies no activation of its own (none, linear, or one fused into the loss): its output is the GGN's logits. */
function logitsAtOutput(request: EngineRequest, structure: GraphStructure): boolean {
  const node = request.model.nodes[structure.output];
  if (!('activation' in node.config)) return true;
  return activationRule(fusedOutput(request.loss, node.config.activation).outputActivation.type).name === 'linear';
}
