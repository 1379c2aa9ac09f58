import { tf, type Tensor2D, type Tensor3D } from '../tf.js';
import type { LossRule } from './rule.js';

/** mean over batch and units of (a - y)^2: gradient 2 (a - y) / N, Hessian 2 / N times identity. */
export const meanSquaredError: LossRule = {
  name: 'meanSquaredError',
  aliases: ['mean_squared_error', 'mse'],
  targets: 'dense',
  takesLogits: false,
  apply(a, y, _params, keep) {
    const count = a.size;
    const error = tf.sub(a, y);
    return {
      value: tf.sum(tf.square(error)).dataSync()[0] / count,
      gradient: keep(tf.mul(error, 2 / count) as Tensor2D),
      hvp: (ra) => tf.mul(ra, 2 / count) as Tensor3D,
    };
  },
};
