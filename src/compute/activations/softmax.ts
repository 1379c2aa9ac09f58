import { tf, type Tensor2D, type Tensor3D } from '../tf.js';
import { perDirection, type ActivationRule } from './rule.js';

/**
 * Softmax over the units: J = diag(s) - s s^T (symmetric), so J v = s * (v - <s, v>).
 * For delta = J^T g = s * u with u = g - <s, g>, differentiating along R(z) with g fixed gives
 * R(s) * u - s * <R(s), g>.
 */
const innerOverUnits = (a: Tensor3D, b: Tensor3D) => tf.sum(tf.mul(a, b), -1, true) as Tensor3D;
const project = (s: Tensor3D, v: Tensor3D) => tf.mul(s, tf.sub(v, innerOverUnits(s, v))) as Tensor3D;

export const softmax: ActivationRule = {
  name: 'softmax',
  aliases: [],
  apply(z, _params, keep) {
    const output = keep(tf.softmax(z) as Tensor2D);
    const s = keep(perDirection(output));
    let g: Tensor3D | null = null;
    let u: Tensor3D | null = null;
    return {
      output,
      backward(grad) {
        g = keep(perDirection(grad));
        u = keep(tf.sub(g, innerOverUnits(s, g)) as Tensor3D);
        return tf.squeeze(tf.mul(s, u), [1]) as Tensor2D;
      },
      jvp: (rz) => project(s, rz),
      vjp: (rg) => project(s, rg),
      curvature(rz) {
        const rs = project(s, rz);
        return tf.sub(tf.mul(rs, u!), tf.mul(s, innerOverUnits(rs, g!))) as Tensor3D;
      },
    };
  },
};
