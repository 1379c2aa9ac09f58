import { activationRule } from '../activations/index.js';
import { fusedOutput } from '../losses/fusion.js';
import type { MatrixKind } from '../operators/operator.js';
import type { EngineRequest } from '../spec.js';
import { directionFlops } from './cost.js';
import type { GraphStructure } from './structure.js';

/**
 * How the graph engine computes an exact diagonal of M, each way a sum of squares (or of products) of
 * backward-pass results, none building M:
 * - 'examples' (the Fisher): (1/B) Σ_b g_b², a backward direction per example (its own gradient);
 * - 'logits' (the GGN, when the output node's output is the logits, and cheaper): Σ_b Σ_jk Λ_b[j,k] (J_bᵀe_j) ⊙ (J_bᵀe_k)
 *   (+ 2 l2 on regularized kernels), a backward direction per example and logit, then B m² P host work;
 * - 'units' (the Hessian, and any other GGN): M times blocks of unit directions, one per parameter, each
 *   keeping its own entry (a forward and a backward pass each).
 */
export type DiagonalMethod = 'examples' | 'logits' | 'units';

/** Above this many logits, the B m² P host work of the 'logits' way is not worth it. */
const MAX_LOGITS = 64;

export interface DiagonalPlan {
  method: DiagonalMethod;
  /** Directions its passes carry in all. */
  directions: number;
  /** Estimated operations (graph/cost.ts's per direction; a backward-only direction costed as a whole product). */
  flops: number;
}

/** The way a diagonal is computed: for the GGN, the 'logits' way when it is possible and cheaper than unit directions. */
export function diagonalPlan(request: EngineRequest, structure: GraphStructure, kind: MatrixKind): DiagonalPlan {
  const batch = request.data.x.shape[0];
  const { selected, units } = structure;
  const size = selected.reduce((n, t) => n + t.size, 0);
  const perDirection = directionFlops(request, structure);
  const fromLowest = perDirection(Math.min(...selected.map((t) => t.layer)));
  if (kind === 'fisher') return { method: 'examples', directions: batch, flops: batch * fromLowest + 2 * batch * size };
  const byUnits: DiagonalPlan = { method: 'units', directions: size, flops: selected.reduce((n, t) => n + t.size * perDirection(t.layer), 0) };
  if (kind !== 'ggn' || units > MAX_LOGITS || !logitsAtOutput(request, structure)) return byUnits;
  const byLogits: DiagonalPlan = { method: 'logits', directions: batch * units, flops: batch * units * fromLowest + 2 * batch * units * units * size };
  return byLogits.flops < byUnits.flops ? byLogits : byUnits;
}

/** Whether the output node applies no activation of its own (none, linear, or one fused into the loss): its output is the GGN's logits. */
function logitsAtOutput(request: EngineRequest, structure: GraphStructure): boolean {
  const node = request.model.nodes[structure.output];
  if (!('activation' in node.config)) return true;
  return activationRule(fusedOutput(request.loss, node.config.activation).outputActivation.type).name === 'linear';
}
