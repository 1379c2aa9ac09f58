import { layerDefinition } from '../../compute/graph/layers/index.js';
import { LayerError, type LayerShapes } from '../../compute/graph/layers/layer.js';
import { layerWeights, type GraphModel, type NodeSpec, type WeightName } from '../../compute/spec.js';
import { at, Issues, type Path } from './issues.js';

/**
 * What every importer hands over: the layers it read from its format, each with where it came from,
 * in the model's own order. buildGraph checks what does not depend on the format (names, links,
 * shapes, weights' shapes) and makes the engine's GraphModel.
 */
export interface NodeDraft {
  /** The node without weights; concatenate and batchNormalization axes may still be negative (from the end). */
  node: NodeSpec;
  /** The layer's field, e.g. "model.layers[2]" or "model.modelTopology.config.layers[3]". */
  path: Path;
  namePath: Path;
  inputsPath: Path;
}

export interface GraphDraft {
  input: GraphModel['input'];
  /** Where the input's shape (or dtype) is given. */
  inputPath: Path;
  nodes: NodeDraft[];
  output: string;
  outputPath: Path;
  seed: number;
}

/**
 * Reads one node's weights into node.weights, given the shape each must have; reports problems in
 * `issues` (a weight it leaves out is seeded by the engine).
 */
export type WeightAttacher = (draft: NodeDraft, expected: Partial<Record<WeightName, number[]>>) => void;

const show = (shape: readonly number[]) => `[batch, ${shape.join(', ')}]`;

/** The parameter tensors' names in the flat order: node by node, then layerWeights order. */
export const parameterNames = (model: Pick<GraphModel, 'nodes'>): string[] =>
  model.nodes.flatMap((node) => layerWeights(node).filter((w) => w.trainable).map((w) => `${node.name}/${w.name}`));

/**
 * The parameter tensors in the flat order with their shapes, offsets and sizes, from the node output
 * shapes an import gives (what a parameter map and admission need, before any tensor exists).
 */
export function parameterTensors(model: GraphModel, shapes: ReadonlyMap<string, number[]>): { name: string; shape: number[]; offset: number; size: number }[] {
  let offset = 0;
  return model.nodes.flatMap((node) => {
    const expected = layerShapes(node, node.inputs.map((name) => shapes.get(name)!)).weights;
    return layerWeights(node)
      .filter((w) => w.trainable)
      .map(({ name }) => {
        const shape = expected[name]!;
        const size = shape.reduce((a, b) => a * b, 1);
        offset += size;
        return { name: `${node.name}/${name}`, shape, offset: offset - size, size };
      });
  });
}

/** A node's output and weight shapes (the graph engine's own rules); throws LayerError. */
export const layerShapes = (node: NodeSpec, inputs: number[][]): LayerShapes => layerDefinition(node.type).shapes(node as never, inputs);

/** The GraphModel of a draft with every node's output shape, or null when `issues` got a problem. */
export function buildGraph(draft: GraphDraft, issues: Issues, attachWeights: WeightAttacher): { model: GraphModel; shapes: Map<string, number[]> } | null {
  const before = issues.count;
  const nodes = linkedInOrder(draft, issues);
  if (!nodes) return null;
  checkIntegerInput(draft, nodes, issues);

  const shapes = new Map<string, number[]>([[draft.input.name, draft.input.shape]]);
  for (const d of nodes) {
    const inputs = d.node.inputs.map((name) => shapes.get(name));
    if (inputs.some((s) => s === undefined)) continue; // an input's own problem is reported already
    const first = inputs[0] as number[];
    if (d.node.type === 'batchNormalization' || d.node.type === 'concatenate') {
      const { axis } = d.node.config;
      if (axis < 0) d.node.config.axis = first.length + 1 + axis;
    }
    let layer: LayerShapes;
    try {
      layer = layerShapes(d.node, inputs as number[][]);
    } catch (error) {
      if (!(error instanceof LayerError)) throw error;
      issues.add(d.path, `${d.path}: layer '${d.node.name}' (${d.node.type}): ${error.message}; its input${inputs.length > 1 ? 's are' : ' is'} ${inputs.map((s) => show(s!)).join(', ')}`);
      continue;
    }
    shapes.set(d.node.name, layer.output);
    attachWeights(d, layer.weights);
  }

  const output = shapes.get(draft.output);
  if (output && output.length !== 1) {
    issues.add(
      draft.outputPath,
      `the model output '${draft.output}' is ${show(output)}; the losses take [batch, units]: end the model with a Flatten, a global pooling or a Dense on [batch, features]`,
    );
  }
  if (issues.count > before) return null;
  return { model: { input: draft.input, nodes: nodes.map((d) => d.node), output: draft.output, seed: draft.seed }, shapes };
}

/**
 * The drafts in an order where every node comes after its inputs (the model's own order when it is
 * one already), each name unique and linked; every node must lead to the output.
 */
function linkedInOrder(draft: GraphDraft, issues: Issues): NodeDraft[] | null {
  const before = issues.count;
  const byName = new Map<string, NodeDraft>();
  for (const d of draft.nodes) {
    const { name } = d.node;
    if (byName.has(name) || name === draft.input.name) issues.add(d.namePath, `${d.namePath} '${name}' is used by an earlier layer${name === draft.input.name ? ' (the model input)' : ''}`);
    else byName.set(name, d);
  }
  const known = [draft.input.name, ...byName.keys()];
  for (const d of draft.nodes) {
    d.node.inputs.forEach((name, k) => {
      if (name === d.node.name) issues.add(at(d.inputsPath, k), `${at(d.inputsPath, k)}: layer '${name}' cannot take its own output`);
      else if (!known.includes(name)) issues.add(at(d.inputsPath, k), `${at(d.inputsPath, k)} '${name}' is not a layer of the model; it has ${known.join(', ')}`);
    });
  }
  if (!byName.has(draft.output)) issues.add(draft.outputPath, `${draft.outputPath}: the output '${draft.output}' is not a layer of the model`);
  if (issues.count > before) return null;

  // Kahn's algorithm, always taking the earliest ready node: the model's order when it is topological.
  const ordered: NodeDraft[] = [];
  const placed = new Set([draft.input.name]);
  const waiting = [...draft.nodes];
  while (waiting.length) {
    const next = waiting.findIndex((d) => d.node.inputs.every((name) => placed.has(name)));
    if (next < 0) {
      issues.add(waiting[0].inputsPath, `layers ${waiting.map((d) => `'${d.node.name}'`).join(', ')} take each other's outputs in a cycle`);
      return null;
    }
    const [d] = waiting.splice(next, 1);
    ordered.push(d);
    placed.add(d.node.name);
  }

  const feedsOutput = new Set([draft.output]);
  for (const d of [...ordered].reverse()) if (feedsOutput.has(d.node.name)) d.node.inputs.forEach((name) => feedsOutput.add(name));
  for (const d of ordered) {
    if (!feedsOutput.has(d.node.name)) {
      issues.add(d.path, `${d.path}: layer '${d.node.name}' does not lead to the output '${draft.output}'; list it in a later layer's inputs, or remove it`);
    }
  }
  if (!feedsOutput.has(draft.input.name)) issues.add(draft.inputPath, `${draft.inputPath}: the model input '${draft.input.name}' does not lead to the output`);
  return issues.count > before ? null : ordered;
}

/** Integer ids go to embeddings only, and an embedding takes the model input's ids directly. */
function checkIntegerInput(draft: GraphDraft, nodes: NodeDraft[], issues: Issues): void {
  const inputName = draft.input.name;
  for (const d of nodes) {
    const takesInput = d.node.inputs.includes(inputName);
    if (d.node.type === 'embedding' && (!takesInput || d.node.inputs.length !== 1)) {
      issues.add(d.inputsPath, `${d.inputsPath}: embedding '${d.node.name}' takes integer ids, so only the model input '${inputName}' (an embedding after other layers is not supported)`);
    } else if (d.node.type === 'embedding' && draft.input.dtype !== 'int32') {
      issues.add(draft.inputPath, `${draft.inputPath}: the model input feeds embedding '${d.node.name}', which takes integer ids: the input dtype must be int32, not ${draft.input.dtype}`);
    } else if (d.node.type !== 'embedding' && takesInput && draft.input.dtype === 'int32') {
      issues.add(d.inputsPath, `${d.inputsPath}: layer '${d.node.name}' (${d.node.type}) takes the model input, which holds int32 ids: only embeddings take ids`);
    }
  }
}
