import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** clip(0.2 z + 0.5, 0, 1), as tf.keras 2 and TF.js: slope 0.2 inside (-2.5, 2.5), 0 outside. */
export const hardSigmoid = elementwise({
  name: 'hardSigmoid',
  aliases: ['hard_sigmoid'],
  value: (z) => tf.clipByValue(tf.add(tf.mul(z, 0.2), 0.5), 0, 1),
  d1: (z) => tf.mul(tf.cast(tf.less(tf.abs(z), 2.5), 'float32'), 0.2),
  d2: null,
  scalar: (z) => [Math.min(1, Math.max(0, 0.2 * z + 0.5)), Math.abs(z) < 2.5 ? 0.2 : 0, 0],
});
