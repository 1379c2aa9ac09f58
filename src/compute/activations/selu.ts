import { tf } from '../tf.js';
import { eluFactors, eluScalar } from './elu.js';
import { elementwise } from './rule.js';

/** scale * elu(z, alpha) with the fixed self-normalising constants. */
const ALPHA = 1.6732632423543772;
const SCALE = 1.0507009873554805;
export const selu = elementwise({
  name: 'selu',
  value: (z) => tf.mul(eluFactors(z, ALPHA).value, SCALE),
  d1: (z) => tf.mul(eluFactors(z, ALPHA).d1, SCALE),
  d2: (z) => tf.mul(eluFactors(z, ALPHA).d2, SCALE),
  scalar: (z) => eluScalar(z, ALPHA).map((v) => v * SCALE) as [number, number, number],
});
