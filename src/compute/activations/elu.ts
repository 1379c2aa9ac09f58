import { tf, type Tensor2D } from '../tf.js';
import { elementwise } from './rule.js';

/** alpha * e^z on the negative side: f' = f'' = alpha * e^z there, 1 and 0 on the positive side. */
export const eluFactors = (z: Tensor2D, alpha: number) => {
  const positive = tf.greater(z, 0);
  const alphaExp = tf.mul(tf.exp(tf.minimum(z, 0)), alpha);
  return {
    value: tf.where(positive, z, tf.sub(alphaExp, alpha)) as Tensor2D,
    d1: tf.where(positive, tf.onesLike(z), alphaExp) as Tensor2D,
    d2: tf.where(positive, tf.zerosLike(z), alphaExp) as Tensor2D,
  };
};

/** eluFactors on one float64 number: [value, f', f'']. */
export const eluScalar = (z: number, alpha: number): [number, number, number] => {
  if (z > 0) return [z, 1, 0];
  const alphaExp = alpha * Math.exp(z);
  return [alpha * Math.expm1(z), alphaExp, alphaExp];
};

export const elu = elementwise({
  name: 'elu',
  value: (z, p) => eluFactors(z, p.alpha ?? 1).value,
  d1: (z, _a, p) => eluFactors(z, p.alpha ?? 1).d1,
  d2: (z, _a, p) => eluFactors(z, p.alpha ?? 1).d2,
  scalar: (z, p) => eluScalar(z, p.alpha ?? 1),
});
