import { linearLayer, type LayerDefinition, type LinearOps } from './layer.js';

const identity: LinearOps = { apply: ([x]) => x, transpose: (g) => [g] };

/** The identity: the Hessian is of the inference-mode loss, where dropout does nothing. */
export const dropout: LayerDefinition<'dropout'> = {
  type: 'dropout',
  shapes: (_node, [input]) => ({ output: input, weights: {} }),
  prepare: (_node, [input], _weights, { keep }) => linearLayer([input], identity, null, keep),
};

/** An activation alone: the identity followed by the activation stage. */
export const activation: LayerDefinition<'activation'> = {
  type: 'activation',
  shapes: (_node, [input]) => ({ output: input, weights: {} }),
  prepare: (node, [input], _weights, { keep, activation: override }) =>
    linearLayer([input], identity, override ?? node.config.activation, keep),
};
