import { tf } from '../tf.js';
import { meanOverElements } from './rule.js';

/** mean of |a - y|: per element sign(a - y); second derivative zero away from a = y. */
export const meanAbsoluteError = meanOverElements({
  name: 'meanAbsoluteError',
  aliases: ['mean_absolute_error', 'mae'],
  takesLogits: false,
  terms(a, y) {
    const error = tf.sub(a, y);
    return { value: tf.abs(error), first: tf.sign(error), second: null };
  },
  scalar: (a, y) => [Math.abs(a - y), Math.sign(a - y), 0],
});
