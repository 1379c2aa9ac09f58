import type { GraphModel, NodeSpec } from '../compute/spec.js';
import { allParameters, SpecError, specError } from '../compute/index.js';
import { layerName } from '../compute/parameters.js';
import { prefixIssues } from './models.js';
import type { ImportedModel } from '../jobs/models.js';
import { Model } from '../schemas/model.js';
import { nestedToMatrix } from '../schemas/tensor.js';

/**
 * The one place the model store calls the importers (src/schemas) and the engine's shape inference.
 * TEMPORARY until the importers' importModel/tfjsArtifactsModel and the graph engine's shapes land:
 * our own JSON for dense stacks only.
 */
export function importModelUpload(model: unknown, path: string): ImportedModel {
  const parsed = Model.safeParse(model);
  if (!parsed.success) throw specError(prefixIssues(parsed.error, path));
  const dense = parsed.data;
  const nodes: NodeSpec[] = dense.layers.map((layer, l) => ({
    name: layerName(dense, l),
    type: 'dense',
    inputs: [l === 0 ? 'input' : layerName(dense, l - 1)],
    config: {
      units: layer.units,
      activation: typeof layer.activation === 'string' ? { type: layer.activation } : layer.activation,
      useBias: layer.useBias,
      kernelL2: layer.kernelRegularizer?.l2 ?? 0,
    },
    weights: {
      ...(layer.kernel ? { kernel: nestedToMatrix(layer.kernel, layer.units).values } : {}),
      ...(layer.bias ? { bias: Float32Array.from(layer.bias) } : {}),
    },
    trainable: true,
  }));
  const graph: GraphModel = {
    input: { name: 'input', shape: [...dense.inputShape], dtype: 'float32' },
    nodes,
    output: nodes[nodes.length - 1].name,
    seed: dense.seed,
  };
  const parameters = allParameters(dense).map(({ name, shape, offset, size }) => ({ name, shape, offset, size }));
  return {
    model: graph,
    shapes: [[graph.input.name, [...dense.inputShape]], ...nodes.map((node, l): [string, number[]] => [node.name, [dense.layers[l].units]])],
    summary: {
      parameters,
      size: parameters.reduce((n, p) => n + p.size, 0),
      inputShape: [...dense.inputShape],
      outputShape: [dense.layers[dense.layers.length - 1].units],
    },
  };
}

/** TF.js artifacts (model.json and its weight files' bytes): refused until the TF.js importer lands. */
export function importArtifactsUpload(_modelJson: unknown, _weights: Uint8Array): ImportedModel {
  throw new SpecError([{ path: 'model.json', message: 'TF.js model.json uploads are not supported by this server yet; send our own JSON model format' }]);
}
