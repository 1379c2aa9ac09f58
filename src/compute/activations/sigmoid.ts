import { tf, type Tensor } from '../tf.js';
import { elementwise } from './rule.js';

/**
 * sigmoid'(z) = s (1 - s), computed as sigmoid(z) sigmoid(-z): 1 - s cancels to exactly 0 in
 * float32 once s rounds to 1 (z above about 17), while sigmoid(-z) keeps its relative precision.
 */
export const sigmoidSlope = (z: Tensor): Tensor => tf.mul(tf.sigmoid(z), tf.sigmoid(tf.neg(z)));

/** sigmoid and sigmoidSlope in float64. */
export const sigmoid64 = (z: number): number => 1 / (1 + Math.exp(-z));
export const sigmoidSlope64 = (z: number): number => sigmoid64(z) * sigmoid64(-z);

/** f' = s (1 - s), f'' = s (1 - s) (1 - 2 s), with 1 - s as sigmoid(-z) and 1 - 2 s as sigmoid(-z) - s. */
export const sigmoid = elementwise({
  name: 'sigmoid',
  value: (z) => tf.sigmoid(z),
  d1: (z) => sigmoidSlope(z),
  d2: (z, s) => tf.mul(sigmoidSlope(z), tf.sub(tf.sigmoid(tf.neg(z)), s)),
  scalar: (z) => {
    const s = sigmoid64(z);
    const slope = sigmoidSlope64(z);
    return [s, slope, slope * (sigmoid64(-z) - s)];
  },
});
