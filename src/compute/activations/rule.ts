import { tf, type Tensor, type Tensor2D, type Tensor3D } from '../tf.js';

/** Parameters an activation may take (only leakyRelu and elu use one). */
export interface ActivationParams {
  alpha?: number;
}

/**
 * Marks a tensor as part of a prepared model's state: it outlives the tf.tidy that prepares the
 * model and is released with it. Everything not marked is freed when preparation ends.
 */
export type Keep = <T extends Tensor>(t: T) => T;

/**
 * An activation evaluated on one batch z [B, m], holding the direction-independent factors of its
 * derivatives. Directional tensors are [B, K, m]: K directions for each of the B examples.
 */
export interface ActivationState {
  readonly output: Tensor2D;
  /** delta = J^T g for the gradient pass. Remembers g: curvature() needs it. */
  backward(g: Tensor2D): Tensor2D;
  /** R(a) = J R(z). */
  jvp(rz: Tensor3D): Tensor3D;
  /** J^T R(g). */
  vjp(rg: Tensor3D): Tensor3D;
  /** The second-order term (d(J^T g)/dz) R(z) for the g given to backward(); null where it is zero. */
  curvature(rz: Tensor3D): Tensor3D | null;
  /** f'(z) as [B, 1, m] when J = diag(f') (element-wise activations), so that callers can skip dense Jacobians. */
  readonly derivative?: Tensor3D;
  /**
   * When the second-order term is diagonal (element-wise activations): its diagonal g * f''(z) [B, m],
   * or null where it is zero. Absent for activations that couple units (softmax).
   */
  curvatureDiagonal?(): Tensor2D | null;
}

/**
 * An element-wise activation on one float64 number: [f(z), f'(z), f''(z)]. The inline path
 * (compute/inline) computes tiny requests with it, without TF.js.
 */
export type ScalarActivation = (z: number, params: ActivationParams) => [value: number, d1: number, d2: number];

export interface ActivationRule {
  name: string;
  /** Other accepted spellings (Keras snake_case). */
  aliases: string[];
  apply(z: Tensor2D, params: ActivationParams, keep: Keep): ActivationState;
  /** The same function on one float64 number, when it is element-wise and has one (inline path). */
  scalar?: ScalarActivation;
}

/** Rules of an activation applied element by element: its value and first and second derivatives. */
export interface ElementwiseDefinition {
  name: string;
  aliases?: string[];
  value(z: Tensor2D, p: ActivationParams): Tensor;
  /** f'(z); `a` is f(z), for rules cheaper in terms of the output (tanh, sigmoid). */
  d1(z: Tensor2D, a: Tensor2D, p: ActivationParams): Tensor;
  /** f''(z), or null when it is zero wherever it is defined (piecewise-linear activations). */
  d2: ((z: Tensor2D, a: Tensor2D, p: ActivationParams) => Tensor) | null;
  /** The same value and derivatives on one float64 number (see ScalarActivation). */
  scalar?: ScalarActivation;
}

/** [B, m] -> [B, 1, m], to broadcast over the K directions of [B, K, m]. */
export const perDirection = (t: Tensor2D): Tensor3D => tf.expandDims(t, 1) as Tensor3D;

/** Builds the rule of an element-wise activation: J = diag(f'), second-order term g * f'' * R(z). */
export function elementwise(def: ElementwiseDefinition): ActivationRule {
  return {
    name: def.name,
    aliases: def.aliases ?? [],
    ...(def.scalar ? { scalar: def.scalar } : {}),
    apply(z, params, keep) {
      const output = keep(def.value(z, params) as Tensor2D);
      const d1 = def.d1(z, output, params);
      const d1PerDirection = keep(perDirection(d1 as Tensor2D));
      const d2 = def.d2 ? def.d2(z, output, params) : null;
      let gD2: Tensor3D | null = null; // g * f''(z), set by backward()
      return {
        output,
        backward(g) {
          if (d2) gD2 = keep(perDirection(tf.mul(g, d2) as Tensor2D));
          return tf.mul(g, d1) as Tensor2D;
        },
        jvp: (rz) => tf.mul(rz, d1PerDirection) as Tensor3D,
        vjp: (rg) => tf.mul(rg, d1PerDirection) as Tensor3D,
        curvature: (rz) => (gD2 ? (tf.mul(rz, gD2) as Tensor3D) : null),
        derivative: d1PerDirection,
        curvatureDiagonal: () => (gD2 ? (tf.squeeze(gD2, [1]) as Tensor2D) : null),
      };
    },
  };
}
