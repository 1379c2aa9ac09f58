import { tf, type Tensor2D } from '../tf.js';
import { elementwise } from './rule.js';

/** Exact GELU z Phi(z): f' = Phi + z phi, f'' = phi (2 - z^2), with phi the standard normal density. */
const normalCdf = (z: Tensor2D) => tf.mul(tf.add(tf.erf(tf.mul(z, Math.SQRT1_2)), 1), 0.5);
const normalPdf = (z: Tensor2D) => tf.mul(tf.exp(tf.mul(tf.square(z), -0.5)), 1 / Math.sqrt(2 * Math.PI));

export const gelu = elementwise({
  name: 'gelu',
  value: (z) => tf.mul(z, normalCdf(z)),
  d1: (z) => tf.add(normalCdf(z), tf.mul(z, normalPdf(z))),
  d2: (z) => tf.mul(normalPdf(z), tf.sub(2, tf.square(z))),
});
