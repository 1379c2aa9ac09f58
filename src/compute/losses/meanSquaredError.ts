import { tf } from '../tf.js';
import { meanOverElements } from './rule.js';

/** mean over batch and units of (a - y)^2: per element 2 (a - y) and 2. */
export const meanSquaredError = meanOverElements({
  name: 'meanSquaredError',
  aliases: ['mean_squared_error', 'mse'],
  takesLogits: false,
  terms(a, y) {
    const error = tf.sub(a, y);
    return { value: tf.square(error), first: tf.mul(error, 2), second: 2 };
  },
  scalar: (a, y) => [(a - y) ** 2, 2 * (a - y), 2],
});
