import { tf } from '../tf.js';
import { elementwise } from './rule.js';
import { sigmoid64, sigmoidSlope, sigmoidSlope64 } from './sigmoid.js';

/**
 * z sigmoid(z): f' = s + z s (1 - s), f'' = s (1 - s) (2 + z (1 - 2 s)), with s (1 - s) from
 * sigmoidSlope and 1 - 2 s as sigmoid(-z) - s, so that neither cancels for large z.
 */
export const swish = elementwise({
  name: 'swish',
  aliases: ['silu'],
  value: (z) => tf.mul(z, tf.sigmoid(z)),
  d1: (z) => tf.add(tf.sigmoid(z), tf.mul(z, sigmoidSlope(z))),
  d2: (z) => tf.mul(sigmoidSlope(z), tf.add(2, tf.mul(z, tf.sub(tf.sigmoid(tf.neg(z)), tf.sigmoid(z))))),
  scalar: (z) => {
    const s = sigmoid64(z);
    const slope = sigmoidSlope64(z);
    return [z * s, s + z * slope, slope * (2 + z * (sigmoid64(-z) - s))];
  },
});
