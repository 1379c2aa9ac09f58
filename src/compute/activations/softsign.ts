import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** z / (1 + |z|): f' = 1 / (1 + |z|)^2, f'' = -2 sign(z) / (1 + |z|)^3. */
export const softsign = elementwise({
  name: 'softsign',
  value: (z) => tf.div(z, tf.add(tf.abs(z), 1)),
  d1: (z) => tf.reciprocal(tf.square(tf.add(tf.abs(z), 1))),
  d2: (z) => tf.div(tf.mul(tf.sign(z), -2), tf.pow(tf.add(tf.abs(z), 1), 3)),
  scalar: (z) => {
    const d = 1 + Math.abs(z);
    return [z / d, 1 / (d * d), (-2 * Math.sign(z)) / (d * d * d)];
  },
});
