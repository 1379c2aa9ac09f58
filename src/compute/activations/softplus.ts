import { tf } from '../tf.js';
import { elementwise } from './rule.js';
import { sigmoidSlope } from './sigmoid.js';

/** log(1 + e^z): f' = sigmoid(z), f'' = s (1 - s) without cancellation (see sigmoidSlope). */
export const softplus = elementwise({
  name: 'softplus',
  value: (z) => tf.softplus(z),
  d1: (z) => tf.sigmoid(z),
  d2: (z) => sigmoidSlope(z),
});
