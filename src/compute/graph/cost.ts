import { chooseBlockSize, FLOAT, JS_NUMBER, type CostEstimate } from '../cost.js';
import type { EngineRequest, NodeSpec } from '../spec.js';
import { product } from './layers/layer.js';
import { graphStructure, type GraphStructure } from './structure.js';

/**
 * What a graph's Hessian costs, from shapes alone (no tensors): the peak bytes of one worker task
 * (the prepared graph plus K directions' tensors, all alive until the task's tidy ends) and the
 * floating-point operations of the whole job, with K chosen to fit the budget. The per-element
 * constants are upper bounds over the layers (test/graph.cost.test.ts checks them against TF.js's
 * own count of the real passes); the row blocks are costed as the job runs them, upper-only.
 */

/** Per output element, [B, ...] tensors a prepared node keeps (output, f', g f'', delta, the activation rule's own). */
const PREPARED_PER_OUTPUT = 10;
/** Per output element of a node, [K, B, ...] tensors a task allocates there (R(z), R(y), R(g), R(delta), bias, activation, transposes). */
const DIRECTIONAL_PER_OUTPUT = 12;
/** Per input element: R(dL/d input) from both terms, their sum, the conv transposes' reshapes. */
const DIRECTIONAL_PER_INPUT = 4;
/** Per weight element: the direction, its transposed copies, R(dL/dW) from both terms and their sum. */
const DIRECTIONAL_PER_WEIGHT = 6;
/** Element-wise operations per directional element (activation and loss rules). */
const ELEMENTWISE_FLOPS = 20;

/** Sizes per example of one node, from its shapes. */
interface NodeWork {
  inputs: number;
  output: number;
  weights: number;
  /** Multiply-adds per example of one application of the node's bilinear map (0 for the others). */
  macs: number;
  /** Floats per example of gathered slots (conv patches, pooling windows), per application. */
  gathered: number;
  /** Floats of the node's fixed tensors: gather indices, one-hot ids per example. */
  indices: number;
  perExampleIndices: number;
}

function nodeWork(node: NodeSpec, inputShapes: number[][], output: number[], weights: number[][]): NodeWork {
  const inputs = inputShapes.reduce((n, s) => n + product(s), 0);
  const out = product(output);
  const work: NodeWork = { inputs, output: out, weights: weights.reduce((n, s) => n + product(s), 0), macs: 0, gathered: 0, indices: 0, perExampleIndices: 0 };
  const input = inputShapes[0];
  switch (node.type) {
    case 'dense':
      work.macs = out * input[input.length - 1];
      break;
    case 'conv2d': {
      const patch = node.config.kernelSize[0] * node.config.kernelSize[1] * input[2];
      const patches = (out / node.config.filters) * patch;
      Object.assign(work, { macs: out * patch, gathered: patches, indices: patches + inputs * node.config.kernelSize[0] * node.config.kernelSize[1] });
      break;
    }
    case 'batchNormalization':
      work.macs = out;
      break;
    case 'embedding':
      Object.assign(work, { macs: out * node.config.inputDim, perExampleIndices: product(input) * node.config.inputDim });
      break;
    case 'maxPooling2d':
    case 'averagePooling2d': {
      const area = node.config.poolSize[0] * node.config.poolSize[1];
      const overlap = Math.ceil(node.config.poolSize[0] / node.config.strides[0]) * Math.ceil(node.config.poolSize[1] / node.config.strides[1]);
      // Max pooling's routing is per example (one slot each way); average pooling's windows are shared.
      if (node.type === 'maxPooling2d') Object.assign(work, { gathered: out + inputs * overlap, perExampleIndices: out + inputs * overlap });
      else Object.assign(work, { gathered: out * area + inputs * overlap, indices: 2 * (out * area + inputs * overlap) });
      break;
    }
    case 'globalAveragePooling2d':
      Object.assign(work, { gathered: 2 * inputs, indices: 4 * inputs });
      break;
    case 'globalMaxPooling2d':
      Object.assign(work, { gathered: out + inputs, perExampleIndices: out + inputs });
      break;
  }
  return work;
}

const works = (request: EngineRequest, structure: GraphStructure): NodeWork[] =>
  request.model.nodes.map((node, i) => {
    const { inputs, shapes } = structure.nodes[i];
    const inputShapes = inputs.map((s) => (s < 0 ? request.model.input.shape : structure.nodes[s].shapes.output));
    return nodeWork(node, inputShapes, shapes.output, Object.values(shapes.weights));
  });

/** Bytes the prepared graph holds for the whole job: weights, per-node tensors, gather indices, data. */
function preparedBytes(request: EngineRequest, work: NodeWork[], size: number): number {
  const batch = request.data.x.shape[0];
  let floats = 0;
  for (const w of work) {
    floats += batch * (PREPARED_PER_OUTPUT * w.output + 2 * w.inputs + w.gathered + w.perExampleIndices) + 3 * w.weights + w.indices;
  }
  const dataValues = request.data.x.values.length + request.data.y.values.length;
  const all = work.reduce((n, w) => n + w.weights, 0);
  return FLOAT * (floats + 2 * all + size + 2 * dataValues) + JS_NUMBER * dataValues;
}

/** Bytes one direction adds to a task whose directions are in node `first` (every later node costed). */
function bytesPerDirection(batch: number, work: NodeWork[], first: number, columnNodes: Set<number>, size: number): number {
  let floats = size; // the task's rows
  for (let i = first; i < work.length; i++) {
    const w = work[i];
    floats += batch * (DIRECTIONAL_PER_OUTPUT * w.output + DIRECTIONAL_PER_INPUT * w.inputs + 2 * w.gathered) + DIRECTIONAL_PER_WEIGHT * w.weights;
    if (columnNodes.has(i)) floats += 2 * w.weights; // read back to JS
  }
  return FLOAT * floats;
}

/** Operations of one direction in node `first`: R-forward from it, R-backward down to it (upper-only rows). */
function flopsPerDirection(batch: number, work: NodeWork[], first: number): number {
  let flops = 0;
  for (let i = first; i < work.length; i++) {
    const { macs, output, inputs, gathered } = work[i];
    // At `first`: B(x, V) (a gather for most layers) and B_W^T(x, R delta); after it: B(R x, W) forward,
    // B_x^T(R delta, W) backward and both B_W^T terms of its rows.
    const applications = i === first ? 2 : 4;
    flops += batch * (2 * applications * macs + ELEMENTWISE_FLOPS * (output + inputs) + 4 * gathered);
  }
  return flops;
}

/** Operations of one direction of a product as a function of its node (see flopsPerDirection): what the diagonal's plan compares. */
export function directionFlops(request: EngineRequest, structure: GraphStructure): (first: number) => number {
  const work = works(request, structure);
  const batch = request.data.x.shape[0];
  return (first) => flopsPerDirection(batch, work, first);
}

/**
 * The cost of a graph request's full Hessian (its `wrt` selection) and the directions per task that fit
 * `budgetBytes`, as compute/cost.ts gives it for dense stacks. Throws SpecError as PreparedGraph would.
 */
export function graphCost(request: EngineRequest, budgetBytes: number): CostEstimate {
  const structure = graphStructure(request);
  const work = works(request, structure);
  const batch = request.data.x.shape[0];
  const selected = structure.selected;
  const size = selected.reduce((n, t) => n + t.size, 0);
  const columnNodes = new Set(selected.map((t) => t.layer));
  const fixed = preparedBytes(request, work, size);
  const perDirection = Math.max(0, ...[...columnNodes].map((first) => bytesPerDirection(batch, work, first, columnNodes, size)));
  const widest = Math.max(1, ...work.map((w) => Math.max(w.output, w.inputs))); // of the [K, B, ...] node tensors
  const blockSize = chooseBlockSize({ batch, widest, size, fixed, perDirection }, budgetBytes);
  let flops = 0;
  for (const w of work) flops += batch * (3 * 2 * w.macs + ELEMENTWISE_FLOPS * w.output); // forward, backward, gradient
  for (const t of selected) flops += t.size * flopsPerDirection(batch, work, t.layer);
  return { size, blockSize, peakBytes: fixed + blockSize * perDirection, minimumBytes: fixed + perDirection, flops };
}
