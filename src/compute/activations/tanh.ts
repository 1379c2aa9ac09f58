import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** f' = 1 - t^2, f'' = -2 t (1 - t^2), from the output t. */
export const tanh = elementwise({
  name: 'tanh',
  value: (z) => tf.tanh(z),
  d1: (_z, t) => tf.sub(1, tf.square(t)),
  d2: (_z, t) => tf.mul(tf.mul(t, -2), tf.sub(1, tf.square(t))),
});
