import { sigmoid64, sigmoidSlope, sigmoidSlope64 } from '../activations/sigmoid.js';
import { softplus64 } from '../activations/softplus.js';
import { tf } from '../tf.js';
import { meanOverElements } from './rule.js';

/**
 * Per unit -(y log p + (1 - y) log(1 - p)), mean over units and batch.
 * From logits (p = sigmoid(a)), in forms that stay exact for confident logits (|a| of 17 and more,
 * where p rounds to 1 in float32 and softplus(a) - y a, p - y or p (1 - p) cancel to 0):
 * value y softplus(-a) + (1 - y) softplus(a), first derivative (1 - y) sigmoid(a) - y sigmoid(-a),
 * second sigmoid(a) sigmoid(-a).
 * From probabilities (no epsilon clipping): (1 - y)/(1 - a) - y/a, and y/a^2 + (1 - y)/(1 - a)^2.
 * A sigmoid output layer never reaches these: the model feeds its logits to the form above (see fusesWith).
 */
export const binaryCrossentropy = meanOverElements({
  name: 'binaryCrossentropy',
  aliases: ['binary_crossentropy'],
  takesLogits: true,
  fusesWith: 'sigmoid',
  terms(a, y, params) {
    const oneMinusY = tf.sub(1, y);
    if (params.fromLogits) {
      const minusA = tf.neg(a);
      return {
        value: tf.add(tf.mul(y, tf.softplus(minusA)), tf.mul(oneMinusY, tf.softplus(a))),
        first: tf.sub(tf.mul(oneMinusY, tf.sigmoid(a)), tf.mul(y, tf.sigmoid(minusA))),
        second: sigmoidSlope(a),
      };
    }
    const oneMinusA = tf.sub(1, a);
    return {
      value: tf.neg(tf.add(tf.mul(y, tf.log(a)), tf.mul(oneMinusY, tf.log(oneMinusA)))),
      first: tf.sub(tf.div(oneMinusY, oneMinusA), tf.div(y, a)),
      second: tf.add(tf.div(y, tf.square(a)), tf.div(oneMinusY, tf.square(oneMinusA))),
    };
  },
  scalar: (a, y, params) => {
    if (params.fromLogits) return [y * softplus64(-a) + (1 - y) * softplus64(a), (1 - y) * sigmoid64(a) - y * sigmoid64(-a), sigmoidSlope64(a)];
    return [-(y * Math.log(a) + (1 - y) * Math.log(1 - a)), (1 - y) / (1 - a) - y / a, y / (a * a) + (1 - y) / (1 - a) ** 2];
  },
});
