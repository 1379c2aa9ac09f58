import { reshapeOps } from './reshape.js';
import { linearLayer, product, type LayerDefinition } from './layer.js';

/** Row-major (C order) over the non-batch axes, as TF. */
export const flatten: LayerDefinition<'flatten'> = {
  type: 'flatten',
  shapes: (_node, [input]) => ({ output: [product(input)], weights: {} }),
  prepare: (_node, [input], _weights, { keep }) => linearLayer([input], reshapeOps(input.shape.slice(1), [input.size / input.shape[0]]), null, keep),
};
