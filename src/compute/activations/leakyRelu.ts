import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** z for z > 0, alpha*z otherwise (alpha defaults to 0.2, as TF.js and Keras 3). */
export const DEFAULT_LEAKY_ALPHA = 0.2;
export const leakyRelu = elementwise({
  name: 'leakyRelu',
  aliases: ['leaky_relu'],
  value: (z, p) => tf.leakyRelu(z, p.alpha ?? DEFAULT_LEAKY_ALPHA),
  d1: (z, _a, p) => tf.where(tf.greater(z, 0), tf.onesLike(z), tf.fill(z.shape, p.alpha ?? DEFAULT_LEAKY_ALPHA)),
  d2: null,
  scalar: (z, p) => {
    const alpha = p.alpha ?? DEFAULT_LEAKY_ALPHA;
    return z > 0 ? [z, 1, 0] : [alpha * z, alpha, 0];
  },
});
