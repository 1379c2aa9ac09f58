import { tf } from '../../tf.js';
import { kernelLayer, placeColumns, LayerError, matMulK, type BilinearOps, type LayerDefinition } from './layer.js';

/**
 * x W: x [K, B, ..., n] against W [K, n, m] acts on the last axis, as Keras's Dense on any rank.
 * Shared with embedding (its one-hot ids times the embeddings).
 */
export const lastAxisProduct: BilinearOps = {
  apply(x, w) {
    const [n, m] = w.shape.slice(1);
    const rows = tf.reshape(x, [x.shape[0], -1, n]);
    const k = Math.max(x.shape[0], w.shape[0]);
    return tf.reshape(matMulK(rows, w), [k, ...x.shape.slice(1, -1), m]);
  },
  applyUnits(x, units, [n, m]) {
    const rows = tf.reshape(x, [-1, n]); // [N, n]
    const kernelRow = units.map((u) => Math.floor(u / m));
    const unit = units.map((u) => u % m);
    return tf.reshape(placeColumns(rows, kernelRow, unit, m), [units.length, ...x.shape.slice(1, -1), m]);
  },
  transposeInput(g, w) {
    const [n, m] = w.shape.slice(1);
    const k = Math.max(g.shape[0], w.shape[0]);
    return tf.reshape(matMulK(tf.reshape(g, [g.shape[0], -1, m]), w, false, true), [k, ...g.shape.slice(1, -1), n]);
  },
  transposeWeight(x, g) {
    const n = x.shape[x.rank - 1];
    const m = g.shape[g.rank - 1];
    return matMulK(tf.reshape(x, [x.shape[0], -1, n]), tf.reshape(g, [g.shape[0], -1, m]), true, false);
  },
};

/** y = f(x W + b) on the last axis of any rank. Kernel [inputs, units]. */
export const dense: LayerDefinition<'dense'> = {
  type: 'dense',
  shapes(node, [input]) {
    if (input.length < 1) throw new LayerError('needs an input of rank 1 or more (per example)');
    const inputs = input[input.length - 1];
    const { units, useBias } = node.config;
    return { output: [...input.slice(0, -1), units], weights: { kernel: [inputs, units], ...(useBias ? { bias: [units] } : {}) } };
  },
  prepare: (node, [input], weights, { keep, activation }) =>
    kernelLayer(lastAxisProduct, input, weights, activation ?? node.config.activation, keep),
};
