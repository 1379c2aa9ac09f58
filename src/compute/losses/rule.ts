import { perDirection, type Keep } from '../activations/rule.js';
import { tf, type Tensor, type Tensor2D, type Tensor3D } from '../tf.js';

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

/**
 * One example's loss on float64 numbers, for the inline path (compute/inline): `a` the output [m],
 * `y` its targets [m] (labels one-hot). Writes that example's gradient [m] and Hessian [m x m]
 * (row-major) in a into `gradient` and `hessian`, and returns its value; the mean over the batch is
 * the caller's.
 */
export type ExampleLoss = (a: Float64Array, y: Float64Array, params: LossParams, gradient: Float64Array, hessian: Float64Array) => number;

export interface LossRule {
  name: string;
  aliases: string[];
  targets: TargetKind;
  /** Whether `fromLogits` means anything for this loss. */
  takesLogits: boolean;
  /**
   * The output activation whose probabilities this loss can take as logits instead (sigmoid for binary,
   * softmax for categorical cross-entropy): the same function, but computed in the logits form it has
   * no log 0 when the activation saturates. The model makes that choice (outputRules in model.ts).
   */
  fusesWith?: string;
  apply(output: Tensor2D, y: Tensor2D, params: LossParams, keep: Keep): LossState;
  /** The same loss on one example in float64, when it has that form (inline path). */
  example?: ExampleLoss;
}

/** A loss that is the mean over all B*m elements of a per-element function of (a, y). */
export interface ElementwiseLossDefinition {
  name: string;
  aliases: string[];
  takesLogits: boolean;
  fusesWith?: string;
  /** Per element: the value, its first derivative in a, and its second (a constant, or null for 0). */
  terms(a: Tensor2D, y: Tensor2D, params: LossParams): { value: Tensor; first: Tensor; second: Tensor | number | null };
  /** The same terms on one float64 element: [value, first, second] (inline path). */
  scalar?: (a: number, y: number, params: LossParams) => [value: number, first: number, second: number];
}

/** An element-wise loss's ExampleLoss: the mean over the example's m units of its scalar terms. */
function exampleOfElements(scalar: NonNullable<ElementwiseLossDefinition['scalar']>): ExampleLoss {
  return (a, y, params, gradient, hessian) => {
    const m = a.length;
    hessian.fill(0);
    let value = 0;
    for (let j = 0; j < m; j++) {
      const [v, first, second] = scalar(a[j], y[j], params);
      value += v;
      gradient[j] = first / m;
      hessian[j * m + j] = second / m;
    }
    return value / m;
  };
}

export function meanOverElements(def: ElementwiseLossDefinition): LossRule {
  return {
    name: def.name,
    aliases: def.aliases,
    targets: 'dense',
    takesLogits: def.takesLogits,
    fusesWith: def.fusesWith,
    ...(def.scalar ? { example: exampleOfElements(def.scalar) } : {}),
    apply(a, y, params, keep) {
      const count = a.size;
      const { value, first, second } = def.terms(a, y, params);
      const curvature =
        typeof second === 'number' ? second / count : second ? keep(perDirection(tf.div(second, count) as Tensor2D)) : null;
      return {
        value: tf.sum(value).dataSync()[0] / count,
        gradient: keep(tf.div(first, count) as Tensor2D),
        hvp: (ra) => (curvature === null ? tf.zerosLike(ra) : tf.mul(ra, curvature)) as Tensor3D,
      };
    },
  };
}
