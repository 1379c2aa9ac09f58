import { tf } from '../../tf.js';
import { linearLayer, LayerError, type LayerDefinition } from './layer.js';

/** Two or more inputs of equal shape, summed; the transpose hands g to each. */
export const add: LayerDefinition<'add'> = {
  type: 'add',
  shapes(_node, inputs) {
    sameShapes(inputs, 'add');
    return { output: inputs[0], weights: {} };
  },
  prepare: (_node, inputs, _weights, { keep }) =>
    linearLayer(inputs, { apply: (xs) => tf.addN(xs), transpose: (g) => inputs.map(() => g) }, null, keep),
};

export function sameShapes(inputs: number[][], type: string): void {
  if (inputs.length < 2) throw new LayerError(`${type} needs two or more inputs, got ${inputs.length}`);
  const first = JSON.stringify(inputs[0]);
  const other = inputs.findIndex((s) => JSON.stringify(s) !== first);
  if (other >= 0) throw new LayerError(`${type} needs inputs of equal shape, but input 0 is [${inputs[0]}] and input ${other} is [${inputs[other]}]`);
}
