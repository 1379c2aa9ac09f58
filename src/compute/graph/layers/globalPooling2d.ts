import { tf } from '../../tf.js';
import { linearLayer, type LayerDefinition } from './layer.js';
import { averageMap, imageShape, maxRouting, perExample } from './pooling.js';

/** The pooling of a whole [height, width] plane per channel. */
const wholePlane = (shape: number[]) => {
  const [height, width] = imageShape(shape);
  return { poolSize: [height, width] as [number, number], strides: [1, 1] as [number, number], padding: 'valid' as const };
};

/** [B, H, W, C] -> [B, C], the mean over each plane. */
export const globalAveragePooling2d: LayerDefinition<'globalAveragePooling2d'> = {
  type: 'globalAveragePooling2d',
  shapes: (_node, [input]) => ({ output: [imageShape(input)[2]], weights: {} }),
  prepare(_node, [input], _weights, { keep }) {
    const inShape = input.shape.slice(1);
    return linearLayer([input], perExample(averageMap(inShape, wholePlane(inShape), keep), inShape, [inShape[2]]), null, keep);
  },
};

/** [B, H, W, C] -> [B, C], the max of each plane (piecewise linear, as max pooling). */
export const globalMaxPooling2d: LayerDefinition<'globalMaxPooling2d'> = {
  type: 'globalMaxPooling2d',
  shapes: (_node, [input]) => ({ output: [imageShape(input)[2]], weights: {} }),
  prepare(_node, [input], _weights, { keep }) {
    const routing = maxRouting(input, wholePlane(input.shape.slice(1)), keep);
    const channels = input.shape[3] as number;
    // The routing's output is [.., 1, 1, C]; the layer's is [.., C].
    return linearLayer(
      [input],
      { apply: (xs) => tf.reshape(routing.apply(xs), [-1, channels]), transpose: (g) => routing.transpose(tf.reshape(g, [-1, 1, 1, channels])) },
      null,
      keep,
    );
  },
};
