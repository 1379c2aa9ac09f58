import { perDirection } from '../activations/rule.js';
import { tf, type Tensor2D, type Tensor3D } from '../tf.js';
import type { LossRule } from './rule.js';

/**
 * Per unit -(y log p + (1 - y) log(1 - p)), mean over units and batch (N elements).
 * From logits (p = sigmoid(a)): softplus(a) - y a, gradient p - y, second derivative p (1 - p).
 * From probabilities (no epsilon clipping): gradient (1 - y)/(1 - a) - y/a, second y/a^2 + (1 - y)/(1 - a)^2.
 */
export const binaryCrossentropy: LossRule = {
  name: 'binaryCrossentropy',
  aliases: ['binary_crossentropy'],
  targets: 'dense',
  takesLogits: true,
  apply(a, y, params, keep) {
    const count = a.size;
    const oneMinusY = tf.sub(1, y);
    let perElement, gradient, second;
    if (params.fromLogits) {
      const p = tf.sigmoid(a);
      perElement = tf.sub(tf.softplus(a), tf.mul(y, a));
      gradient = tf.sub(p, y);
      second = tf.mul(p, tf.sub(1, p));
    } else {
      const oneMinusA = tf.sub(1, a);
      perElement = tf.neg(tf.add(tf.mul(y, tf.log(a)), tf.mul(oneMinusY, tf.log(oneMinusA))));
      gradient = tf.sub(tf.div(oneMinusY, oneMinusA), tf.div(y, a));
      second = tf.add(tf.div(y, tf.square(a)), tf.div(oneMinusY, tf.square(oneMinusA)));
    }
    const curvature = keep(perDirection(tf.div(second, count) as Tensor2D));
    return {
      value: tf.sum(perElement).dataSync()[0] / count,
      gradient: keep(tf.div(gradient, count) as Tensor2D),
      hvp: (ra) => tf.mul(ra, curvature) as Tensor3D,
    };
  },
};
