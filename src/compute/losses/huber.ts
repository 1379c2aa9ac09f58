import { perDirection } from '../activations/rule.js';
import { tf, type Tensor2D, type Tensor3D } from '../tf.js';
import type { LossRule } from './rule.js';

/** 0.5 e^2 where |e| <= delta, delta |e| - 0.5 delta^2 beyond; mean over batch and units (Keras). */
export const huber: LossRule = {
  name: 'huber',
  aliases: ['huber_loss'],
  targets: 'dense',
  takesLogits: false,
  apply(a, y, params, keep) {
    const delta = params.delta ?? 1;
    const count = a.size;
    const error = tf.sub(a, y);
    const absError = tf.abs(error);
    const inside = tf.lessEqual(absError, delta);
    const perElement = tf.where(inside, tf.mul(tf.square(error), 0.5), tf.sub(tf.mul(absError, delta), 0.5 * delta * delta));
    const curvature = keep(perDirection(tf.div(tf.cast(inside, 'float32'), count) as Tensor2D));
    return {
      value: tf.sum(perElement).dataSync()[0] / count,
      gradient: keep(tf.div(tf.where(inside, error, tf.mul(tf.sign(error), delta)), count) as Tensor2D),
      hvp: (ra) => tf.mul(ra, curvature) as Tensor3D,
    };
  },
};
