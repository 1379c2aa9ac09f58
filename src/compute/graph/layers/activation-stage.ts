import { activationRule } from '../../activations/index.js';
import type { ActivationState, Keep } from '../../activations/rule.js';
import type { ActivationSpec } from '../../spec.js';
import { tf, type Tensor, type Tensor2D, type Tensor3D } from '../../tf.js';

/**
 * An activation of compute/activations applied over the last axis of a node's pre-activation z
 * [B, ..., m], with directions [K, B, ..., m]. The rules are written for [N, m] with directions
 * [N, K, m]; an element-wise rule (J = diag f') needs no such layout: its f' and g f'' broadcast
 * against [K, B, ...] as they are. Only a rule that couples the units (softmax) gets its directions
 * transposed to [N, K, m] and back.
 */
export class ActivationStage {
  readonly output: Tensor;

  private constructor(
    private readonly state: ActivationState,
    private readonly shape: number[],
    /** f'(z) shaped as z, for element-wise rules. */
    private readonly slope: Tensor | null,
    keep: Keep,
  ) {
    this.output = keep(tf.reshape(state.output, shape));
  }

  /** null for the linear activation: no stage at all. */
  static create(z: Tensor, spec: ActivationSpec, keep: Keep): ActivationStage | null {
    const rule = activationRule(spec.type);
    if (rule.name === 'linear') return null;
    const units = z.shape[z.rank - 1];
    const state = rule.apply(tf.reshape(z, [z.size / units, units]) as Tensor2D, spec, keep);
    const slope = state.derivative ? keep(tf.reshape(state.derivative, z.shape)) : null;
    return new ActivationStage(state, z.shape, slope, keep);
  }

  /** delta = J^T g; g [B, ...]. */
  backward(g: Tensor): Tensor {
    return tf.reshape(this.state.backward(tf.reshape(g, this.state.output.shape) as Tensor2D), this.shape);
  }

  /** R(a) = J R(z). */
  jvp(rz: Tensor): Tensor {
    return this.slope ? tf.mul(rz, this.slope) : this.coupled(rz, (t) => this.state.jvp(t));
  }

  /** R(delta) = J^T R(g) + (d(J^T g)/dz) R(z), either input possibly zero (null). */
  rDelta(rg: Tensor | null, rz: Tensor | null): Tensor | null {
    const firstOrder = rg ? (this.slope ? tf.mul(rg, this.slope) : this.coupled(rg, (t) => this.state.vjp(t))) : null;
    const secondOrder = rz ? this.curvature(rz) : null;
    if (firstOrder && secondOrder) return tf.add(firstOrder, secondOrder);
    return firstOrder ?? secondOrder;
  }

  private curvature(rz: Tensor): Tensor | null {
    if (this.slope) {
      const diagonal = this.state.curvatureDiagonal!();
      return diagonal ? tf.mul(rz, tf.reshape(diagonal, this.shape)) : null; // null: piecewise linear (relu), f'' = 0
    }
    let zero = false;
    const result = this.coupled(rz, (t) => {
      const c = this.state.curvature(t);
      zero = c === null;
      return c ?? t;
    });
    return zero ? null : result;
  }

  /** Applies a rule's [N, K, m] map to [K, B, ..., m] directions. */
  private coupled(t: Tensor, map: (t: Tensor3D) => Tensor3D): Tensor {
    const k = t.shape[0];
    const [n, m] = this.state.output.shape;
    const perExample = tf.transpose(tf.reshape(t, [k, n, m]), [1, 0, 2]) as Tensor3D;
    return tf.reshape(tf.transpose(map(perExample), [1, 0, 2]), t.shape);
  }
}
