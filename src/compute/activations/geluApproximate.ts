import { tf, type Tensor2D } from '../tf.js';
import { elementwise } from './rule.js';

/**
 * The tanh form 0.5 z (1 + tanh(u)), u = c (z + 0.044715 z^3), c = sqrt(2/pi).
 * With t = tanh(u), t' = (1 - t^2) u': f' = 0.5 (1 + t) + 0.5 z t', f'' = t' + 0.5 z t'',
 * t'' = -2 t t' u' + (1 - t^2) u''.
 */
const C = Math.sqrt(2 / Math.PI);
const K = 0.044715;
function parts(z: Tensor2D) {
  const t = tf.tanh(tf.mul(tf.add(z, tf.mul(tf.pow(z, 3), K)), C));
  const du = tf.mul(tf.add(tf.mul(tf.square(z), 3 * K), 1), C);
  const ddu = tf.mul(z, 6 * K * C);
  const sech2 = tf.sub(1, tf.square(t));
  const dt = tf.mul(sech2, du);
  const ddt = tf.add(tf.mul(tf.mul(tf.mul(t, dt), du), -2), tf.mul(sech2, ddu));
  return { t, dt, ddt };
}

export const geluApproximate = elementwise({
  name: 'geluApproximate',
  aliases: ['gelu_approximate'],
  value: (z) => tf.mul(tf.mul(z, 0.5), tf.add(parts(z).t, 1)),
  d1: (z) => {
    const { t, dt } = parts(z);
    return tf.add(tf.mul(tf.add(t, 1), 0.5), tf.mul(tf.mul(z, 0.5), dt));
  },
  d2: (z) => {
    const { dt, ddt } = parts(z);
    return tf.add(dt, tf.mul(tf.mul(z, 0.5), ddt));
  },
});
