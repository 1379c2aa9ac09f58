import { tf, type Tensor } from '../../tf.js';
import { bilinearLayer, LayerError, type BilinearOps, type LayerDefinition } from './layer.js';

/** gamma [K, C] shaped to broadcast over [K, B, ..., C]. */
const overChannels = (gamma: Tensor, rank: number) => tf.reshape(gamma, [gamma.shape[0], ...Array(rank - 2).fill(1), gamma.shape[1]]);

/**
 * Inference mode: y = gamma (x - movingMean) / sqrt(movingVariance + epsilon) + beta, the moving
 * statistics constants. Bilinear in (x - movingMean, gamma): B(u, gamma) = gamma s u with s the
 * constant 1 / sqrt(var + eps) (symmetric in u, so B_x^T is B itself); beta is the bias.
 */
function channelScale(invStd: Tensor): BilinearOps {
  const scale = (x: Tensor, gamma: Tensor) => tf.mul(tf.mul(x, overChannels(gamma, x.rank)), invStd);
  return {
    apply: scale,
    transposeInput: scale,
    transposeWeight(x, g) {
      const perElement = tf.mul(tf.mul(x, g), invStd);
      return tf.sum(perElement, [...Array(perElement.rank - 2).keys()].map((a) => a + 1)); // [K, C]
    },
  };
}

export const batchNormalization: LayerDefinition<'batchNormalization'> = {
  type: 'batchNormalization',
  shapes(node, [input]) {
    const { axis, center, scale } = node.config;
    if (axis !== input.length) throw new LayerError(`axis ${axis} is not the last axis (${input.length}); only the last (channels) axis is supported`);
    const channels = [input[input.length - 1]];
    return {
      output: input,
      weights: { ...(scale ? { gamma: channels } : {}), ...(center ? { beta: channels } : {}), moving_mean: channels, moving_variance: channels },
    };
  },
  prepare(node, [input], weights, { keep }) {
    const invStd = keep(tf.rsqrt(tf.add(weights.moving_variance!, node.config.epsilon)));
    const gamma = weights.gamma ? { name: 'gamma' as const, value: weights.gamma } : { name: null, value: tf.onesLike(weights.moving_variance!) };
    return bilinearLayer(
      {
        ops: channelScale(invStd),
        x: tf.sub(input, weights.moving_mean!),
        differentiableInput: true,
        weight: gamma,
        bias: weights.beta ? { name: 'beta', value: weights.beta } : null,
        activation: null,
      },
      keep,
    );
  },
};
