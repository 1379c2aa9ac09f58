import type { NodeSpec } from '../../compute/spec.js';
import { describeValue } from '../model.js';
import type { GraphDraft, NodeDraft } from './graph.js';
import { at, Issues, isObject, type Path } from './issues.js';
import { kerasLayer } from './keras-layers.js';

/**
 * A Keras-style model topology, as Keras 3's to_json, Keras 2's (and tensorflowjs_converter's) and
 * TF.js's modelTopology write it: a Sequential or a functional model ("Functional", Keras 2 and TF.js
 * "Model") with one input and one output, as a graph draft without weights.
 */

const MODEL_CLASSES = ['Sequential', 'Functional', 'Model'];

/** A layer's call: the names of the layers whose outputs it takes. */
type Call = { inputs: string[] } | { problem: string };

/** A link to a layer's output: Keras 2 / TF.js [name, node, tensor, kwargs]; Keras 3 keras_history [name, node, tensor]. */
function link(history: unknown): string | { problem: string } {
  if (!Array.isArray(history) || typeof history[0] !== 'string') return { problem: `cannot read the link ${describeValue(JSON.stringify(history))}` };
  const [name, node, tensor] = history;
  if (node !== 0 && node !== undefined) return { problem: `takes the output of call ${describeValue(node)} of layer '${name}': a layer called more than once (shared weights) is not supported` };
  if (tensor !== 0 && tensor !== undefined) return { problem: `takes output ${describeValue(tensor)} of layer '${name}': layers with several outputs are not supported` };
  return name;
}

/** Every Keras 3 __keras_tensor__ in a call's args, in order (merge layers take a list of them); args nest a few levels at most. */
function kerasTensors(value: unknown, found: unknown[] = [], depth = 0): unknown[] {
  if (depth > 8) return found;
  if (Array.isArray(value)) value.forEach((v) => kerasTensors(v, found, depth + 1));
  else if (isObject(value) && value.class_name === '__keras_tensor__') found.push(isObject(value.config) ? value.config.keras_history : undefined);
  else if (isObject(value)) Object.values(value).forEach((v) => kerasTensors(v, found, depth + 1));
  return found;
}

function call(inboundNodes: unknown): Call {
  if (!Array.isArray(inboundNodes)) return { problem: `has inbound_nodes ${describeValue(inboundNodes)}; expected a list` };
  if (inboundNodes.length !== 1) {
    return { problem: inboundNodes.length ? `is called ${inboundNodes.length} times: a layer called more than once (shared weights) is not supported` : 'is not called on any input' };
  }
  const node = inboundNodes[0];
  const links = Array.isArray(node) ? node : isObject(node) ? kerasTensors(node.args) : [];
  const inputs: string[] = [];
  for (const l of links) {
    const name = link(l);
    if (typeof name !== 'string') return name;
    inputs.push(name);
  }
  return inputs.length ? { inputs } : { problem: 'has a call with no inputs this service can read' };
}

/** The names in input_layers / output_layers: Keras 2 [[name, 0, 0], ...], Keras 3 also [name, 0, 0] for one. */
function endpoints(value: unknown): string[] | null {
  if (!Array.isArray(value)) return null;
  const list = typeof value[0] === 'string' ? [value] : value;
  const names = list.map((entry) => (Array.isArray(entry) && typeof entry[0] === 'string' ? entry[0] : null));
  return names.every((n) => n !== null) ? (names as string[]) : null;
}

/** A batch shape [null, ...dims] as the per-example shape; a message when it cannot be one. */
function exampleShape(batchShape: unknown): number[] | string {
  if (!Array.isArray(batchShape) || batchShape.length < 2) return `${describeValue(JSON.stringify(batchShape))} is not a batch shape [null, ...dims]`;
  const dims = batchShape.slice(1);
  if (dims.length > 3) return `[${batchShape.join(', ')}] has ${dims.length} axes per example; at most 3 are supported`;
  if (!dims.every((d) => Number.isInteger(d) && d >= 1)) {
    return `[${batchShape.map((d) => d ?? 'null').join(', ')}] has a size that is not fixed: save the model with a fixed input shape`;
  }
  return dims as number[];
}

const layerName = (layer: Record<string, unknown>, config: Record<string, unknown>) =>
  typeof layer.name === 'string' ? layer.name : typeof config.name === 'string' ? config.name : undefined;

interface InputFound {
  name: string;
  shape: number[];
  path: Path;
}

/** A model topology as a graph draft (dtype float32 until buildGraph's callers see embeddings); null after recording why not. */
export function readTopology(topology: unknown, path: Path, issues: Issues): GraphDraft | null {
  const before = issues.count;
  if (!isObject(topology) || typeof topology.class_name !== 'string') {
    issues.add(path, `${path} must be a model topology {"class_name": "Sequential" | "Functional", "config": {...}}; got ${describeValue(topology)}`);
    return null;
  }
  const className = topology.class_name;
  if (!MODEL_CLASSES.includes(className)) {
    issues.add(at(path, 'class_name'), `${at(path, 'class_name')}: the model is a ${describeValue(className)}; supported: a Sequential or a functional model (Functional, Model)`);
    return null;
  }
  const configPath = at(path, 'config');
  const config = Array.isArray(topology.config) ? { layers: topology.config } : topology.config; // Keras < 2.2.3: the list itself
  if (!isObject(config) || !Array.isArray(config.layers) || config.layers.length === 0) {
    issues.add(at(configPath, 'layers'), `${at(configPath, 'layers')} must be the model's list of layers`);
    return null;
  }
  const layersPath = at(configPath, 'layers');
  const frozen = config.trainable === false;
  let input: InputFound | null = null;
  const drafts: NodeDraft[] = [];
  const functional = className !== 'Sequential';

  config.layers.forEach((layer: unknown, i: number) => {
    const layerPath = at(layersPath, i);
    const layerConfig = isObject(layer) && isObject(layer.config) ? layer.config : null;
    if (!isObject(layer) || typeof layer.class_name !== 'string' || !layerConfig) {
      issues.add(layerPath, `${layerPath} must be a layer {"class_name", "config", ...}; got ${describeValue(layer)}`);
      return;
    }
    const lconfigPath = at(layerPath, 'config');
    const name = layerName(layer, layerConfig);
    if (name === undefined) {
      issues.add(at(lconfigPath, 'name'), `${at(lconfigPath, 'name')}: the layer has no name`);
      return;
    }
    if (layer.class_name === 'InputLayer') {
      if (input) {
        issues.add(layerPath, `${layerPath}: the model has a second input '${name}' (after '${input.name}'); only models with one input are supported`);
        return;
      }
      const shape = exampleShape(layerConfig.batch_shape ?? layerConfig.batch_input_shape);
      if (typeof shape === 'string') issues.add(lconfigPath, `${lconfigPath}: the input '${name}' has batch shape ${shape}`);
      else input = { name, shape, path: lconfigPath };
      return;
    }
    const node = kerasLayer(layer.class_name, { ...layerConfig, name }, layerPath, lconfigPath, issues);
    if (!functional && !input && drafts.length === 0) {
      // A Sequential without an InputLayer: the first layer (TF.js, Keras 2) or the model's build config (Keras 3) has the shape.
      const declared = layerConfig.batch_input_shape ?? layerConfig.batch_shape;
      const built = isObject(topology.build_config) ? topology.build_config.input_shape : isObject(config) ? config.build_input_shape : undefined;
      const shape = exampleShape(declared ?? built);
      if (declared === undefined && built === undefined) issues.add(lconfigPath, `${lconfigPath}: the model has no input shape: give its first layer an inputShape (or an Input layer) before saving it`);
      else if (typeof shape === 'string') issues.add(lconfigPath, `${lconfigPath}: the input has batch shape ${shape}`);
      else input = { name: `${name}_input`, shape, path: lconfigPath };
    }
    if (!node) return;
    let inputs: string[];
    if (functional) {
      const linked = call(layer.inbound_nodes);
      if ('problem' in linked) {
        issues.add(at(layerPath, 'inbound_nodes'), `${at(layerPath, 'inbound_nodes')}: layer '${name}' ${linked.problem}`);
        return;
      }
      inputs = linked.inputs;
    } else inputs = [drafts.at(-1)?.node.name ?? input?.name ?? ''];
    drafts.push({
      node: { ...node, inputs, weights: {}, trainable: node.trainable && !frozen } as NodeSpec,
      path: layerPath,
      namePath: at(lconfigPath, 'name'),
      inputsPath: at(layerPath, functional ? 'inbound_nodes' : 'config'),
    });
  });
  if (issues.count > before) return null;
  if (!input) {
    issues.add(layersPath, `${layersPath}: the model has no InputLayer; save it with a fixed input shape`);
    return null;
  }
  const found: InputFound = input;

  let output = drafts.at(-1)?.node.name;
  let outputPath = at(layersPath, config.layers.length - 1);
  if (functional) {
    const inputs = endpoints(config.input_layers);
    const outputs = endpoints(config.output_layers);
    if (!inputs || inputs.length !== 1 || inputs[0] !== found.name) {
      issues.add(at(configPath, 'input_layers'), `${at(configPath, 'input_layers')}: the model has inputs ${describeValue(JSON.stringify(config.input_layers))}; only models with one input are supported`);
    }
    if (!outputs || outputs.length !== 1) {
      issues.add(at(configPath, 'output_layers'), `${at(configPath, 'output_layers')}: the model has outputs ${describeValue(JSON.stringify(config.output_layers))}; only models with one output are supported`);
    } else {
      output = outputs[0];
      outputPath = at(configPath, 'output_layers');
    }
  }
  if (!output) {
    issues.add(layersPath, `${layersPath}: the model has no layer after its input`);
    return null;
  }
  if (issues.count > before) return null;
  const feedsEmbedding = drafts.some((d) => d.node.type === 'embedding' && d.node.inputs.includes(found.name));
  return {
    input: { name: found.name, shape: found.shape, dtype: feedsEmbedding ? 'int32' : 'float32' },
    inputPath: found.path,
    nodes: drafts,
    output,
    outputPath,
    seed: 0,
  };
}
