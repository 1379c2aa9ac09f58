import { tf } from '../../tf.js';
import { lastAxisProduct } from './dense.js';
import { bilinearLayer, LayerError, oneHotFloat, type LayerDefinition } from './layer.js';

/**
 * Rows of `embeddings` [inputDim, outputDim] picked by integer ids: onehot(ids) · embeddings, the dense
 * product on the last axis with a constant one-hot input (the ids have no derivative).
 */
export const embedding: LayerDefinition<'embedding'> = {
  type: 'embedding',
  shapes(node, [input]) {
    const { inputDim, outputDim } = node.config;
    return { output: [...input, outputDim], weights: { embeddings: [inputDim, outputDim] } };
  },
  prepare(node, [ids], weights, { keep }) {
    const { inputDim } = node.config;
    const values = ids.dataSync();
    const bad = values.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= inputDim);
    if (bad >= 0) throw new LayerError(`id ${values[bad]} (at flat index ${bad} of data.x) is outside [0, ${inputDim}), the layer's inputDim`);
    return bilinearLayer(
      {
        ops: lastAxisProduct,
        x: tf.reshape(oneHotFloat(values, inputDim), [...ids.shape, inputDim]),
        differentiableInput: false,
        weight: { name: 'embeddings', value: weights.embeddings! },
        bias: null,
        activation: null,
      },
      keep,
    );
  },
};
