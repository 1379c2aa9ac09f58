import { lossRule } from '../losses/index.js';
import { SpecError } from '../errors.js';
import { layerWeights, type EngineRequest, type GraphModel, type NodeSpec, type WeightName } from '../spec.js';
import { layerDefinition } from './layers/index.js';
import { LayerError, product, type LayerShapes } from './layers/layer.js';

/** One parameter tensor of a graph, placed in the flat vector of the result. */
export interface GraphParameter {
  /** "<layer name>/<weight name>". */
  name: string;
  /** Index of its node in model.nodes. */
  layer: number;
  weight: WeightName;
  shape: number[];
  size: number;
  /** Start in the flat vector (after any `wrt` selection). */
  offset: number;
}

export interface NodeStructure {
  /** Indices of the input nodes; -1 is the model input. */
  inputs: number[];
  shapes: LayerShapes;
}

/** A model's wiring and shapes, checked, from its spec alone (no tensors): what the engine and the cost estimate share. */
export interface GraphStructure {
  nodes: NodeStructure[];
  output: number;
  /** Every trainable parameter in the flat order (node by node, then in layerWeights order). */
  all: GraphParameter[];
  /** The `wrt` selection (all without it), with offsets in that order. */
  selected: GraphParameter[];
  /** Per-example size of the output, which the loss reads as [B, units]. */
  units: number;
}

const at = (index: number) => `model.layers[${index}]`;
const describe = (node: NodeSpec) => `layer '${node.name}' (${node.type})`;

/** Wiring, shapes, weights' sizes, targets and `wrt`, checked; each problem a SpecError naming its layer or field. */
export function graphStructure(request: EngineRequest): GraphStructure {
  const { model, data, loss } = request;
  const nodes = wire(model);
  const output = model.nodes.findIndex((n) => n.name === model.output);
  if (output < 0) throw new SpecError([{ path: 'model.output', message: `model.output names '${model.output}', which is no layer of the model` }]);
  const outputShape = nodes[output].shapes.output;
  if (outputShape.length !== 1) {
    throw new SpecError([{ path: at(output), message: `${describe(model.nodes[output])} is the model output, of shape [${outputShape}] per example; the loss needs [units] (e.g. add a flatten or a global pooling before it)` }]);
  }
  const units = outputShape[0];
  const [batch, ...perExample] = data.x.shape;
  if (JSON.stringify(perExample) !== JSON.stringify(model.input.shape)) {
    throw new SpecError([{ path: 'data.x', message: `data.x has shape [${data.x.shape}], but the model input needs [batch, ${model.input.shape}]` }]);
  }
  checkTargets(request, batch, units);
  const all = parametersOf(model, nodes);
  return { nodes, output, all, selected: select(all, request.wrt), units };
}

function wire(model: GraphModel): NodeStructure[] {
  const index = new Map<string, number>([[model.input.name, -1]]);
  const shapeOf = (i: number, nodes: NodeStructure[]) => (i < 0 ? model.input.shape : nodes[i].shapes.output);
  const nodes: NodeStructure[] = [];
  model.nodes.forEach((node, i) => {
    if (index.has(node.name)) throw new SpecError([{ path: `${at(i)}.name`, message: `${describe(node)}: the name '${node.name}' is used twice` }]);
    const inputs = node.inputs.map((name) => {
      const source = index.get(name);
      if (source === undefined) {
        throw new SpecError([{ path: `${at(i)}.inputs`, message: `${describe(node)} takes '${name}', which is neither the model input nor a layer before it` }]);
      }
      return source;
    });
    if (node.type === 'embedding' ? inputs.some((s) => s >= 0) || model.input.dtype !== 'int32' : inputs.includes(-1) && model.input.dtype === 'int32') {
      const message = node.type === 'embedding' ? 'an embedding takes the model input of int32 ids' : 'only an embedding takes the int32 model input';
      throw new SpecError([{ path: `${at(i)}.inputs`, message: `${describe(node)}: ${message}` }]);
    }
    try {
      const shapes = layerDefinition(node.type).shapes(node as never, inputs.map((s) => shapeOf(s, nodes)));
      checkWeights(node, shapes);
      nodes.push({ inputs, shapes });
    } catch (error) {
      if (error instanceof LayerError) throw new SpecError([{ path: at(i), message: `${describe(node)}: ${error.message}` }]);
      throw error;
    }
    index.set(node.name, i);
  });
  return nodes;
}

function checkWeights(node: NodeSpec, shapes: LayerShapes): void {
  for (const [name, values] of Object.entries(node.weights) as [WeightName, Float32Array][]) {
    const shape = shapes.weights[name];
    if (!shape) throw new LayerError(`has no weight '${name}' (its weights: ${Object.keys(shapes.weights).join(', ') || 'none'})`);
    if (values.length !== product(shape)) throw new LayerError(`${name} has ${values.length} values, but its shape [${shape}] needs ${product(shape)}`);
  }
}

function checkTargets({ data, loss }: EngineRequest, batch: number, units: number): void {
  const { y } = data;
  if (y.rows !== batch) throw new SpecError([{ path: 'data.y', message: `data.y has ${y.rows} rows, but data.x has a batch of ${batch}` }]);
  if (lossRule(loss.type).targets === 'labels') {
    if (y.columns !== 1) throw new SpecError([{ path: 'data.y', message: `${loss.type} takes one integer label per example; data.y has ${y.columns} per example` }]);
    const bad = y.values.findIndex((label) => !Number.isInteger(label) || label < 0 || label >= units);
    if (bad >= 0) throw new SpecError([{ path: `data.y[${bad}]`, message: `data.y[${bad}] is ${y.values[bad]}, but labels are integers in [0, ${units}) for an output of ${units} units` }]);
  } else if (y.columns !== units) {
    throw new SpecError([{ path: 'data.y', message: `data.y has ${y.columns} targets per example, but the model output has ${units} units` }]);
  }
}

function parametersOf(model: GraphModel, nodes: NodeStructure[]): GraphParameter[] {
  const all: GraphParameter[] = [];
  let offset = 0;
  model.nodes.forEach((node, layer) => {
    for (const { name: weight, trainable } of layerWeights(node)) {
      const shape = nodes[layer].shapes.weights[weight];
      if (!trainable || !shape) continue;
      const size = product(shape);
      all.push({ name: `${node.name}/${weight}`, layer, weight, shape, size, offset });
      offset += size;
    }
  });
  return all;
}

function select(all: GraphParameter[], wrt?: readonly string[]): GraphParameter[] {
  if (!wrt) return all;
  let offset = 0;
  return wrt.map((name, i) => {
    const tensor = all.find((t) => t.name === name);
    if (!tensor) {
      const known = all.map((t) => t.name).join(', ');
      throw new SpecError([{ path: `wrt[${i}]`, message: `wrt[${i}] names '${name}', which is not a trainable parameter of the model (they are: ${known})` }]);
    }
    const placed = { ...tensor, offset };
    offset += tensor.size;
    return placed;
  });
}
