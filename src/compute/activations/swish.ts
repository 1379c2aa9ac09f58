import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** z sigmoid(z): f' = s + z s (1 - s), f'' = s (1 - s) (2 + z (1 - 2 s)). */
export const swish = elementwise({
  name: 'swish',
  aliases: ['silu'],
  value: (z) => tf.mul(z, tf.sigmoid(z)),
  d1: (z) => {
    const s = tf.sigmoid(z);
    return tf.add(s, tf.mul(tf.mul(z, s), tf.sub(1, s)));
  },
  d2: (z) => {
    const s = tf.sigmoid(z);
    return tf.mul(tf.mul(s, tf.sub(1, s)), tf.add(2, tf.mul(z, tf.sub(1, tf.mul(s, 2)))));
  },
});
