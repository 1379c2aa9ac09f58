import { tf } from '../tf.js';
import { meanOverElements } from './rule.js';

/** 0.5 e^2 where |e| <= delta, delta |e| - 0.5 delta^2 beyond; mean over batch and units (Keras). */
export const huber = meanOverElements({
  name: 'huber',
  aliases: ['huber_loss'],
  takesLogits: false,
  terms(a, y, params) {
    const delta = params.delta ?? 1;
    const error = tf.sub(a, y);
    const absError = tf.abs(error);
    const inside = tf.lessEqual(absError, delta);
    return {
      value: tf.where(inside, tf.mul(tf.square(error), 0.5), tf.sub(tf.mul(absError, delta), 0.5 * delta * delta)),
      first: tf.where(inside, error, tf.mul(tf.sign(error), delta)),
      second: tf.cast(inside, 'float32'),
    };
  },
  scalar: (a, y, params) => {
    const delta = params.delta ?? 1;
    const error = a - y;
    const absError = Math.abs(error);
    return absError <= delta ? [0.5 * error * error, error, 1] : [delta * absError - 0.5 * delta * delta, Math.sign(error) * delta, 0];
  },
});
