import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** f' = s (1 - s), f'' = s (1 - s) (1 - 2 s), from the output s. */
export const sigmoid = elementwise({
  name: 'sigmoid',
  value: (z) => tf.sigmoid(z),
  d1: (_z, s) => tf.mul(s, tf.sub(1, s)),
  d2: (_z, s) => tf.mul(tf.mul(s, tf.sub(1, s)), tf.sub(1, tf.mul(s, 2))),
});
