import { perDirection } from '../activations/rule.js';
import { tf, type Tensor2D, type Tensor3D } from '../tf.js';
import type { LossRule } from './rule.js';

/**
 * -sum_j y_j log p_j per example, mean over the batch; Y = sum_j y_j (1 for one-hot targets).
 * From logits (p = softmax(a)): gradient Y p - y, Hessian Y (diag(p) - p p^T).
 * From probabilities, with Keras' renormalisation p = a / S, S = sum_j a_j (no epsilon clipping, so
 * the derivatives are exact): L = -sum y log a + Y log S, gradient -y / a + Y / S,
 * Hessian diag(y / a^2) - (Y / S^2) 1 1^T.
 */
export const categoricalCrossentropy: LossRule = {
  name: 'categoricalCrossentropy',
  aliases: ['categorical_crossentropy'],
  targets: 'dense',
  takesLogits: true,
  apply(a, y, params, keep) {
    const batch = a.shape[0];
    const targetMass = tf.sum(y, 1, true); // Y, [B, 1]
    if (params.fromLogits) {
      const logP = tf.logSoftmax(a);
      const p = tf.exp(logP);
      const pDir = keep(perDirection(tf.mul(p, tf.div(targetMass, batch)) as Tensor2D));
      const plain = keep(perDirection(p as Tensor2D));
      return {
        value: -tf.sum(tf.mul(y, logP)).dataSync()[0] / batch,
        gradient: keep(tf.div(tf.sub(tf.mul(p, targetMass), y), batch) as Tensor2D),
        // Y p * (r - <p, r>) / B
        hvp: (ra) => tf.mul(pDir, tf.sub(ra, tf.sum(tf.mul(plain, ra), -1, true))) as Tensor3D,
      };
    }
    const total = tf.sum(a, 1, true); // S, [B, 1]
    const diagonal = keep(perDirection(tf.div(tf.div(y, tf.square(a)), batch) as Tensor2D));
    const rankOne = keep(perDirection(tf.div(tf.div(targetMass, tf.square(total)), batch) as Tensor2D)); // [B,1,1]
    return {
      value: tf.sum(tf.sub(tf.mul(targetMass, tf.log(total)), tf.sum(tf.mul(y, tf.log(a)), 1, true))).dataSync()[0] / batch,
      gradient: keep(tf.div(tf.sub(tf.div(targetMass, total), tf.div(y, a)), batch) as Tensor2D),
      hvp: (ra) => tf.sub(tf.mul(ra, diagonal), tf.mul(tf.sum(ra, -1, true), rankOne)) as Tensor3D,
    };
  },
};
