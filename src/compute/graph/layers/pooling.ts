import type { Keep } from '../../activations/rule.js';
import type { LayerConfigs } from '../../spec.js';
import { tf, type Tensor } from '../../tf.js';
import { LayerError, type LinearOps } from './layer.js';
import { SparseMap, windows, type Entry } from './sparse-map.js';

type Pool = LayerConfigs['maxPooling2d'];

/** [height, width, channels] per example, or a LayerError naming what the layer got. */
export function imageShape(input: number[]): [number, number, number] {
  if (input.length !== 3) throw new LayerError(`needs an input of shape [height, width, channels] per example, got [${input}]`);
  return input as [number, number, number];
}

/** Output shape of a pooling layer, refusing a window that does not fit. */
export function poolShape(config: Pool, input: number[]): number[] {
  const [height, width, channels] = imageShape(input);
  const { outHeight, outWidth } = windows({ height, width, channels, size: config.poolSize, strides: config.strides, padding: config.padding });
  if (outHeight < 1 || outWidth < 1) throw new LayerError(`poolSize [${config.poolSize}] with padding '${config.padding}' does not fit its input of ${height}x${width}`);
  return [outHeight, outWidth, channels];
}

/** A per-example sparse map as the linear ops of a layer: rows [M, ...] for any M. */
export function perExample(map: SparseMap, inShape: number[], outShape: number[]): LinearOps {
  return {
    apply: ([x]) => tf.reshape(map.apply(tf.reshape(x, [x.shape[0], -1])), [x.shape[0], ...outShape]),
    transpose: (g) => [tf.reshape(map.transpose(tf.reshape(g, [g.shape[0], -1])), [g.shape[0], ...inShape])],
  };
}

/**
 * Max pooling with its argmax routing fixed at the prepared input: exact, as max pooling is piecewise
 * linear (first derivative routes through the argmax, second derivative zero). The routing differs per
 * example, so the map acts on the whole batch: rows [K, B * cells]. Ties go to the first cell of the
 * window in row-major order, and padding never wins (as TensorFlow's MaxPool and its gradient).
 */
export function maxRouting(input: Tensor, config: Pool, keep: Keep): LinearOps {
  const [batch, height, width, channels] = input.shape;
  const { outHeight, outWidth, cell } = windows({ height, width, channels, size: config.poolSize, strides: config.strides, padding: config.padding });
  const values = input.dataSync();
  const inCells = height * width * channels;
  const outCells = outHeight * outWidth * channels;
  const map = SparseMap.build(batch * inCells, batch * outCells, (o) => {
    const b = Math.floor(o / outCells);
    const c = o % channels;
    const p = (o % outCells - c) / channels;
    const [i, j] = [Math.floor(p / outWidth), p % outWidth];
    let best = -1;
    for (let di = 0; di < config.poolSize[0]; di++) {
      for (let dj = 0; dj < config.poolSize[1]; dj++) {
        const at = cell(i, j, di, dj);
        if (!at) continue;
        const index = b * inCells + (at[0] * width + at[1]) * channels + c;
        if (best < 0 || values[index] > values[best]) best = index;
      }
    }
    return [[best, 1]];
  }, keep);
  const inShape = [height, width, channels];
  const outShape = [outHeight, outWidth, channels];
  // Rows [K*B, ...] of the linear family become [K, B*cells] for the batch-wide routing.
  return {
    apply: ([x]) => tf.reshape(map.apply(tf.reshape(x, [-1, batch * inCells])), [-1, ...outShape]),
    transpose: (g) => [tf.reshape(map.transpose(tf.reshape(g, [-1, batch * outCells])), [-1, ...inShape])],
  };
}

/** Average pooling; with SAME padding each window divides by its valid (non-padded) cells only, as TensorFlow. */
export function averageMap(inShape: number[], config: Pool, keep: Keep): SparseMap {
  const [height, width, channels] = inShape;
  const { outHeight, outWidth, cell } = windows({ height, width, channels, size: config.poolSize, strides: config.strides, padding: config.padding });
  return SparseMap.build(height * width * channels, outHeight * outWidth * channels, (o) => {
    const c = o % channels;
    const p = (o - c) / channels;
    const [i, j] = [Math.floor(p / outWidth), p % outWidth];
    const cells: number[] = [];
    for (let di = 0; di < config.poolSize[0]; di++) {
      for (let dj = 0; dj < config.poolSize[1]; dj++) {
        const at = cell(i, j, di, dj);
        if (at) cells.push((at[0] * width + at[1]) * channels + c);
      }
    }
    return cells.map((index): Entry => [index, 1 / cells.length]);
  }, keep);
}
