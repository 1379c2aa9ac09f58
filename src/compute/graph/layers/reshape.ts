import { tf } from '../../tf.js';
import { linearLayer, LayerError, product, type LayerDefinition, type LinearOps } from './layer.js';

/** A per-example reshape from `from` to `to` (both without the batch), and back for the transpose. */
export const reshapeOps = (from: number[], to: number[]): LinearOps => ({
  apply: ([x]) => tf.reshape(x, [x.shape[0], ...to]),
  transpose: (g) => [tf.reshape(g, [g.shape[0], ...from])],
});

/** targetShape without the batch, at most one -1 (inferred). */
export const reshape: LayerDefinition<'reshape'> = {
  type: 'reshape',
  shapes(node, [input]) {
    const target = node.config.targetShape;
    const size = product(input);
    const unknown = target.filter((d) => d === -1).length;
    const known = product(target.filter((d) => d !== -1));
    if (unknown > 1 || target.some((d) => d === 0 || d < -1 || !Number.isInteger(d))) {
      throw new LayerError(`targetShape [${target}] is not a shape (positive sizes, at most one -1)`);
    }
    const output = target.map((d) => (d === -1 ? size / known : d));
    if (output.some((d) => !Number.isInteger(d)) || product(output) !== size) {
      throw new LayerError(`targetShape [${target}] does not fit its input of shape [${input}] (${size} values)`);
    }
    return { output, weights: {} };
  },
  prepare: (node, [input], _weights, { keep }) => {
    const from = input.shape.slice(1);
    const output = reshape.shapes(node, [from]).output;
    return linearLayer([input], reshapeOps(from, output), null, keep);
  },
};
