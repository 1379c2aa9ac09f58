import { linearLayer, type LayerDefinition } from './layer.js';
import { averageMap, perExample, poolShape } from './pooling.js';

/** Average pooling: a fixed linear map (TF's SAME divides by the valid cells only). */
export const averagePooling2d: LayerDefinition<'averagePooling2d'> = {
  type: 'averagePooling2d',
  shapes: (node, [input]) => ({ output: poolShape(node.config, input), weights: {} }),
  prepare(node, [input], _weights, { keep }) {
    const inShape = input.shape.slice(1);
    return linearLayer([input], perExample(averageMap(inShape, node.config, keep), inShape, poolShape(node.config, inShape)), null, keep);
  },
};
