import { tf, type Tensor } from '../tf.js';
import { elementwise } from './rule.js';
import { sigmoidSlope } from './sigmoid.js';

/**
 * tanh'(u) = 1 - tanh(u)^2, computed as 4 sigmoid(2u) sigmoid(-2u) (the same quantity): 1 - t^2
 * cancels to exactly 0 in float32 once |u| exceeds about 9.
 */
export const tanhSlope = (u: Tensor): Tensor => tf.mul(sigmoidSlope(tf.mul(u, 2)), 4);

/** 1 - tanh(z)^2 in float64, as 1 / cosh(z)^2 (no cancellation for large |z|). */
export const tanhSlope64 = (z: number): number => 1 / Math.cosh(z) ** 2;

/** f' = 1 - t^2, f'' = -2 t (1 - t^2). */
export const tanh = elementwise({
  name: 'tanh',
  value: (z) => tf.tanh(z),
  d1: (z) => tanhSlope(z),
  d2: (z, t) => tf.mul(tf.mul(t, -2), tanhSlope(z)),
  scalar: (z) => {
    const t = Math.tanh(z);
    const slope = tanhSlope64(z);
    return [t, slope, -2 * t * slope];
  },
});
