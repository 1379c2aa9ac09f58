import { tf, type Tensor2D } from '../tf.js';
import { elementwise } from './rule.js';
import { sigmoid64 } from './sigmoid.js';
import { tanhSlope, tanhSlope64 } from './tanh.js';

/**
 * The tanh form 0.5 z (1 + tanh(u)), u = c (z + 0.044715 z^3), c = sqrt(2/pi).
 * With t = tanh(u), t' = (1 - t^2) u': f' = 0.5 (1 + t) + 0.5 z t', f'' = t' + 0.5 z t'',
 * t'' = -2 t t' u' + (1 - t^2) u''. 0.5 (1 + t) is computed as sigmoid(2u) and 1 - t^2 by tanhSlope,
 * which do not cancel to 0 in float32 where t rounds to -1 or 1.
 */
const C = Math.sqrt(2 / Math.PI);
const K = 0.044715;
function parts(z: Tensor2D) {
  const u = tf.mul(tf.add(z, tf.mul(tf.pow(z, 3), K)), C);
  const t = tf.tanh(u);
  const du = tf.mul(tf.add(tf.mul(tf.square(z), 3 * K), 1), C);
  const ddu = tf.mul(z, 6 * K * C);
  const sech2 = tanhSlope(u);
  const dt = tf.mul(sech2, du);
  const ddt = tf.add(tf.mul(tf.mul(tf.mul(t, dt), du), -2), tf.mul(sech2, ddu));
  const half1PlusT = tf.sigmoid(tf.mul(u, 2)); // 0.5 (1 + t)
  return { t, half1PlusT, dt, ddt };
}

/** parts() in float64, for the inline path: [value, f', f'']. */
function scalarParts(z: number): [number, number, number] {
  const u = C * (z + K * z ** 3);
  const t = Math.tanh(u);
  const du = C * (1 + 3 * K * z * z);
  const sech2 = tanhSlope64(u);
  const dt = sech2 * du;
  const ddt = -2 * t * dt * du + sech2 * 6 * K * C * z;
  const half1PlusT = sigmoid64(2 * u);
  return [z * half1PlusT, half1PlusT + 0.5 * z * dt, dt + 0.5 * z * ddt];
}

export const geluApproximate = elementwise({
  name: 'geluApproximate',
  aliases: ['gelu_approximate'],
  value: (z) => tf.mul(z, parts(z).half1PlusT),
  d1: (z) => {
    const { half1PlusT, dt } = parts(z);
    return tf.add(half1PlusT, tf.mul(tf.mul(z, 0.5), dt));
  },
  d2: (z) => {
    const { dt, ddt } = parts(z);
    return tf.add(dt, tf.mul(tf.mul(z, 0.5), ddt));
  },
  scalar: scalarParts,
});
