import type { Keep } from '../../activations/rule.js';
import type { LayerConfigs } from '../../spec.js';
import { tf, type Tensor } from '../../tf.js';

type Tensor4D = tf.Tensor4D;
import { kernelLayer, placeColumns, LayerError, matMulK, type BilinearOps, type LayerDefinition } from './layer.js';
import { SparseMap, windows } from './sparse-map.js';

type Conv = LayerConfigs['conv2d'];

/**
 * conv2d (channels last, kernel [kh, kw, in, out], TensorFlow's VALID or exact SAME padding) as a
 * bilinear map. B(x, W) and B_x^T(g, W) are the backend's Conv2D and Conv2DBackpropInput (every backend
 * has both, wasm included); K kernels against one input ride as K*out filters (K*in for the transpose).
 * B_W^T(x, g) (the filter gradient, which wasm lacks) is patches(x)^T g: the patches (im2col) by one
 * precomputed gather, then one matMul; the prepared input's patches are made once.
 */
function convolution(config: Conv, inputShape: number[], keep: Keep): BilinearOps {
  const [height, width, channels] = inputShape;
  const [kh, kw] = config.kernelSize;
  const { outHeight, outWidth, cell } = windows({ height, width, channels, size: config.kernelSize, strides: config.strides, padding: config.padding });
  const patchSize = kh * kw * channels;
  // Patch row p = (i, j), column q = (di, dj, c), the kernel's own row-major order.
  const im2col = SparseMap.build(height * width * channels, outHeight * outWidth * patchSize, (o) => {
    const q = o % patchSize;
    const p = (o - q) / patchSize;
    const c = q % channels;
    const dj = ((q - c) / channels) % kw;
    const di = (q - c - dj * channels) / (channels * kw);
    const at = cell(Math.floor(p / outWidth), p % outWidth, di, dj);
    return at ? [[(at[0] * width + at[1]) * channels + c, 1]] : [];
  }, keep);
  let prepared: { x: Tensor; patches: Tensor } | null = null;
  const patches = (x: Tensor): Tensor => {
    if (prepared?.x === x) return prepared.patches;
    const [k, batch] = x.shape;
    const result = tf.reshape(im2col.apply(tf.reshape(x, [k * batch, -1])), [k, batch * outHeight * outWidth, patchSize]);
    if (!prepared && k === 1) prepared = { x, patches: keep(result) }; // the first such call is on the prepared input (backward)
    return result;
  };
  const pad = config.padding;
  return {
    apply(x, w) {
      const [kx, batch] = x.shape;
      const k = w.shape[0];
      if (k === 1) {
        const y = tf.conv2d(tf.reshape(x, [kx * batch, height, width, channels]) as Tensor4D, tf.squeeze(w, [0]) as Tensor4D, config.strides, pad);
        return tf.reshape(y, [kx, batch, outHeight, outWidth, config.filters]);
      }
      const filters = tf.reshape(tf.transpose(w, [1, 2, 3, 0, 4]), [kh, kw, channels, k * config.filters]) as Tensor4D;
      const y = tf.conv2d(tf.squeeze(x, [0]) as Tensor4D, filters, config.strides, pad);
      return tf.transpose(tf.reshape(y, [batch, outHeight, outWidth, k, config.filters]), [3, 0, 1, 2, 4]);
    },
    applyUnits(x, units) {
      const filters = config.filters;
      const [, batch] = x.shape;
      const rows = tf.squeeze(patches(x), [0]); // [B*H'*W', kh*kw*in]
      const column = units.map((u) => Math.floor(u / filters));
      const filter = units.map((u) => u % filters);
      return tf.reshape(placeColumns(rows, column, filter, filters), [units.length, batch, outHeight, outWidth, filters]);
    },
    transposeInput(g, w) {
      const [kg, batch] = g.shape;
      const k = w.shape[0];
      if (k === 1) {
        const gs = tf.reshape(g, [kg * batch, outHeight, outWidth, config.filters]) as Tensor4D;
        const x = tf.conv2dTranspose(gs, tf.squeeze(w, [0]) as Tensor4D, [kg * batch, height, width, channels], config.strides, pad);
        return tf.reshape(x, [kg, batch, height, width, channels]);
      }
      const filters = tf.reshape(tf.transpose(w, [1, 2, 0, 3, 4]), [kh, kw, k * channels, config.filters]) as Tensor4D;
      const x = tf.conv2dTranspose(tf.squeeze(g, [0]) as Tensor4D, filters, [batch, height, width, k * channels], config.strides, pad);
      return tf.transpose(tf.reshape(x, [batch, height, width, k, channels]), [3, 0, 1, 2, 4]);
    },
    transposeWeight(x, g) {
      const rows = tf.reshape(g, [g.shape[0], -1, config.filters]);
      const product = matMulK(patches(x), rows, true, false); // [K, kh*kw*in, out]
      return tf.reshape(product, [product.shape[0], kh, kw, channels, config.filters]);
    },
  };
}

export const conv2d: LayerDefinition<'conv2d'> = {
  type: 'conv2d',
  shapes(node, [input]) {
    const { kernelSize, strides, padding, filters, useBias } = node.config;
    if (input.length !== 3) throw new LayerError(`needs an input of shape [height, width, channels] per example, got [${input}]`);
    const [height, width, channels] = input;
    const { outHeight, outWidth } = windows({ height, width, channels, size: kernelSize, strides, padding });
    if (outHeight < 1 || outWidth < 1) {
      throw new LayerError(`kernelSize [${kernelSize}] with padding '${padding}' does not fit its input of ${height}x${width}`);
    }
    return {
      output: [outHeight, outWidth, filters],
      weights: { kernel: [...kernelSize, channels, filters], ...(useBias ? { bias: [filters] } : {}) },
    };
  },
  prepare: (node, [input], weights, { keep, activation }) =>
    kernelLayer(convolution(node.config, input.shape.slice(1), keep), input, weights, activation ?? node.config.activation, keep),
};
