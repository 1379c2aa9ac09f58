import { tf } from '../tf.js';
import { meanOverElements } from './rule.js';

/**
 * Per unit -(y log p + (1 - y) log(1 - p)), mean over units and batch.
 * From logits (p = sigmoid(a)): softplus(a) - y a, first derivative p - y, second p (1 - p).
 * From probabilities (no epsilon clipping): (1 - y)/(1 - a) - y/a, and y/a^2 + (1 - y)/(1 - a)^2.
 */
export const binaryCrossentropy = meanOverElements({
  name: 'binaryCrossentropy',
  aliases: ['binary_crossentropy'],
  takesLogits: true,
  terms(a, y, params) {
    const oneMinusY = tf.sub(1, y);
    if (params.fromLogits) {
      const p = tf.sigmoid(a);
      return { value: tf.sub(tf.softplus(a), tf.mul(y, a)), first: tf.sub(p, y), second: tf.mul(p, tf.sub(1, p)) };
    }
    const oneMinusA = tf.sub(1, a);
    return {
      value: tf.neg(tf.add(tf.mul(y, tf.log(a)), tf.mul(oneMinusY, tf.log(oneMinusA)))),
      first: tf.sub(tf.div(oneMinusY, oneMinusA), tf.div(y, a)),
      second: tf.add(tf.div(y, tf.square(a)), tf.div(oneMinusY, tf.square(oneMinusA))),
    };
  },
});
