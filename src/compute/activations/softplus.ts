import { tf } from '../tf.js';
import { elementwise } from './rule.js';
import { sigmoid64, sigmoidSlope, sigmoidSlope64 } from './sigmoid.js';

/** log(1 + e^z) in float64, without overflow for large z. */
export const softplus64 = (z: number): number => (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));

/** log(1 + e^z): f' = sigmoid(z), f'' = s (1 - s) without cancellation (see sigmoidSlope). */
export const softplus = elementwise({
  name: 'softplus',
  value: (z) => tf.softplus(z),
  d1: (z) => tf.sigmoid(z),
  d2: (z) => sigmoidSlope(z),
  scalar: (z) => [softplus64(z), sigmoid64(z), sigmoidSlope64(z)],
});
