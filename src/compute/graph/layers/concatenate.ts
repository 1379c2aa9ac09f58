import { tf } from '../../tf.js';
import { linearLayer, LayerError, type LayerDefinition } from './layer.js';

/** Joins the inputs along `axis` (counting the batch, as spec.ts normalises it); the transpose slices g back. */
export const concatenate: LayerDefinition<'concatenate'> = {
  type: 'concatenate',
  shapes(node, inputs) {
    const axis = node.config.axis - 1; // in the per-example shape
    if (inputs.length < 2) throw new LayerError(`concatenate needs two or more inputs, got ${inputs.length}`);
    const rank = inputs[0].length;
    if (axis < 0 || axis >= rank) throw new LayerError(`axis ${node.config.axis} is outside its inputs of rank ${rank + 1} (with the batch)`);
    inputs.forEach((shape, i) => {
      const fits = shape.length === rank && shape.every((d, a) => a === axis || d === inputs[0][a]);
      if (!fits) throw new LayerError(`concatenate on axis ${node.config.axis} needs inputs equal on every other axis, but input 0 is [${inputs[0]}] and input ${i} is [${shape}]`);
    });
    const output = [...inputs[0]];
    output[axis] = inputs.reduce((n, s) => n + s[axis], 0);
    return { output, weights: {} };
  },
  prepare(node, inputs, _weights, { keep }) {
    const axis = node.config.axis; // [M, ...] tensors: the batch axis is the leading M
    const sizes = inputs.map((x) => x.shape[axis]);
    return linearLayer(inputs, { apply: (xs) => tf.concat(xs, axis), transpose: (g) => tf.split(g, sizes, axis) }, null, keep);
  },
};
