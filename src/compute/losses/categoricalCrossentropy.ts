import { perDirection } from '../activations/rule.js';
import { tf, type Tensor, type Tensor2D, type Tensor3D } from '../tf.js';
import type { ExampleLoss, LossRule } from './rule.js';

/**
 * sum_{j != i} t_j for every unit i (over the last axis), as exclusive prefix plus suffix sums: no
 * subtraction, so 1 - p_i = sum_{j != i} p_j stays exact where p_i rounds to 1 (a dominant logit).
 */
function sumOverOtherUnits<T extends Tensor>(t: T): T {
  const axis = t.rank - 1; // a positive axis: the wasm Cumsum kernel traps on -1
  return tf.add(tf.cumsum(t, axis, true), tf.cumsum(t, axis, true, true)) as T;
}

/**
 * -sum_j y_j log p_j per example, mean over the batch; Y = sum_j y_j (1 for one-hot targets).
 * From logits (p = softmax(a)): gradient Y p - y, Hessian Y (diag(p) - p p^T), in forms with no
 * 1 - p_i, which cancels to 0 in float32 for a confident prediction (Y p_i - y_i = p_i sum_{j != i} y_j
 * - y_i sum_{j != i} p_j, and (diag(p) - p p^T) r = p * (r sum_{j != i} p_j - sum_{j != i} p_j r_j), both as
 * sum p = 1), and -log p_i = softplus(log(sum_{j != i} p_j) - log p_i), which keeps the tiny loss
 * of a confident right prediction that log p_i rounds to 0.
 * From probabilities, with Keras' renormalisation p = a / S, S = sum_j a_j (no epsilon clipping, so
 * the derivatives are exact): L = -sum y log a + Y log S, gradient -y / a + Y / S,
 * Hessian diag(y / a^2) - (Y / S^2) 1 1^T. A softmax output layer never reaches this form: the model
 * feeds its logits to the one above (see fusesWith).
 */
/**
 * The same loss on one example in float64 (inline path), in the forms above: from logits, with
 * -log p_i = (max - a_i) + log(sum_j e^(a_j - max)) and 1 - p_i as the sum over the other units.
 */
const categoricalExample: ExampleLoss = (a, y, params, gradient, hessian) => {
  const m = a.length;
  let targetMass = 0;
  for (let j = 0; j < m; j++) targetMass += y[j];
  let value = 0;
  if (params.fromLogits) {
    let top = 0;
    for (let j = 1; j < m; j++) if (a[j] > a[top]) top = j;
    let others = 0; // sum over j != top of e^(a_j - a_top)
    for (let j = 0; j < m; j++) if (j !== top) others += Math.exp(a[j] - a[top]);
    const logSum = Math.log1p(others);
    const p = new Float64Array(m);
    for (let j = 0; j < m; j++) p[j] = Math.exp(a[j] - a[top] - logSum);
    for (let i = 0; i < m; i++) {
      let rest = 0; // 1 - p_i
      let otherTargets = 0;
      for (let j = 0; j < m; j++) {
        if (j === i) continue;
        rest += p[j];
        otherTargets += y[j];
      }
      value += y[i] === 0 ? 0 : y[i] * (a[top] - a[i] + logSum);
      gradient[i] = p[i] * otherTargets - y[i] * rest;
      for (let j = 0; j < m; j++) hessian[i * m + j] = targetMass * (i === j ? p[i] * rest : -p[i] * p[j]);
    }
    return value;
  }
  let total = 0;
  for (let j = 0; j < m; j++) total += a[j];
  value = targetMass * Math.log(total);
  for (let i = 0; i < m; i++) {
    if (y[i] !== 0) value -= y[i] * Math.log(a[i]);
    gradient[i] = targetMass / total - y[i] / a[i];
    for (let j = 0; j < m; j++) hessian[i * m + j] = (i === j ? y[i] / (a[i] * a[i]) : 0) - targetMass / (total * total);
  }
  return value;
};

export const categoricalCrossentropy: LossRule = {
  name: 'categoricalCrossentropy',
  aliases: ['categorical_crossentropy'],
  targets: 'dense',
  takesLogits: true,
  fusesWith: 'softmax',
  example: categoricalExample,
  apply(a, y, params, keep) {
    const batch = a.shape[0];
    const targetMass = tf.sum(y, 1, true); // Y, [B, 1]
    if (params.fromLogits) {
      const logP = tf.logSoftmax(a);
      const p = tf.exp(logP);
      const rest = sumOverOtherUnits(p); // 1 - p, exactly
      const minusLogP = tf.softplus(tf.sub(tf.log(rest), logP));
      const pDir = keep(perDirection(tf.mul(p, tf.div(targetMass, batch)) as Tensor2D));
      const plain = keep(perDirection(p as Tensor2D));
      const restDir = keep(perDirection(rest as Tensor2D));
      return {
        value: tf.sum(tf.mul(y, minusLogP)).dataSync()[0] / batch,
        gradient: keep(tf.div(tf.sub(tf.mul(p, sumOverOtherUnits(y)), tf.mul(y, rest)), batch) as Tensor2D),
        // Y p * (r - <p, r>) / B
        hvp: (ra) => tf.mul(pDir, tf.sub(tf.mul(ra, restDir), sumOverOtherUnits(tf.mul(plain, ra)))) as Tensor3D,
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
