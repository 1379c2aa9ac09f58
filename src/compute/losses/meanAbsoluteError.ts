import { tf, type Tensor2D, type Tensor3D } from '../tf.js';
import type { LossRule } from './rule.js';

/** mean of |a - y|: gradient sign(a - y) / N; second derivative zero away from a = y. */
export const meanAbsoluteError: LossRule = {
  name: 'meanAbsoluteError',
  aliases: ['mean_absolute_error', 'mae'],
  targets: 'dense',
  takesLogits: false,
  apply(a, y, _params, keep) {
    const count = a.size;
    const error = tf.sub(a, y);
    return {
      value: tf.sum(tf.abs(error)).dataSync()[0] / count,
      gradient: keep(tf.div(tf.sign(error), count) as Tensor2D),
      hvp: (ra) => tf.zerosLike(ra) as Tensor3D,
    };
  },
};
