import { tf } from '../tf.js';
import { elementwise } from './rule.js';

/** max(z, 0); derivative taken as 0 at the kink, as TensorFlow does. */
export const relu = elementwise({
  name: 'relu',
  value: (z) => tf.relu(z),
  d1: (z) => tf.step(z, 0),
  d2: null,
  scalar: (z) => (z > 0 ? [z, 1, 0] : [0, 0, 0]),
});
