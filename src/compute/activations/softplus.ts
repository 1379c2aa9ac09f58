import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** log(1 + e^z): f' = sigmoid(z), f'' = s (1 - s). */
export const softplus = elementwise({
  name: 'softplus',
  value: (z) => tf.softplus(z),
  d1: (z) => tf.sigmoid(z),
  d2: (z) => {
    const s = tf.sigmoid(z);
    return tf.mul(s, tf.sub(1, s));
  },
});
