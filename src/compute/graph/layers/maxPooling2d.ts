import { linearLayer, type LayerDefinition } from './layer.js';
import { maxRouting, poolShape } from './pooling.js';

/** Max pooling (piecewise linear: see maxRouting). */
export const maxPooling2d: LayerDefinition<'maxPooling2d'> = {
  type: 'maxPooling2d',
  shapes: (node, [input]) => ({ output: poolShape(node.config, input), weights: {} }),
  prepare: (node, [input], _weights, { keep }) => linearLayer([input], maxRouting(input, node.config, keep), null, keep),
};
