import type { ParameterTensor } from './parameters.js';

/**
 * What a Hessian costs, from sizes alone (no weights, no tensors): the peak working memory of one
 * worker task and the floating-point operations of every planned pass. The service admits a request
 * by this estimate before anything is allocated, and picks the block size K (directions per task)
 * so that the working set fits the per-worker budget.
 *
 * The model follows the R-operator passes of curvature.ts: inside one tf.tidy every intermediate of
 * a task lives until the task ends, so the peak is the sum of what the task allocates. The constants
 * are upper bounds over the activations and losses (softmax is the most expensive); test/cost.test.ts
 * checks them against TF.js's own count (tf.profile) of the real passes.
 */

/** One dense layer's sizes: z = a W (+ b), W [inputs, units]. */
export interface LayerShape {
  inputs: number;
  units: number;
  bias: boolean;
}

export interface CostShape {
  batch: number;
  layers: LayerShape[];
  /** The selected tensors (the rows of the matrix), with their layers. */
  selected: readonly Pick<ParameterTensor, 'layer' | 'kind' | 'size'>[];
  /** Numbers in the request's data (x and y): the worker holds them as JS arrays and as tensors. */
  dataValues: number;
}

export interface CostEstimate {
  /** P: rows (and columns) of the matrix. */
  size: number;
  /** Directions per worker task. */
  blockSize: number;
  /** Peak bytes of one worker task at that block size, the prepared model included. */
  peakBytes: number;
  /** Peak bytes with one direction per task: the least any plan needs. */
  minimumBytes: number;
  /** Floating-point operations of the whole job (preparation plus every row block). */
  flops: number;
}

export const FLOAT = 4;
/** A number of a parsed JSON array in a V8 heap (a boxed or unboxed double plus its slot). */
export const JS_NUMBER = 16;
/** Live [B, width] tensors a prepared layer keeps per unit (output, f', g f'', delta and its transpose, softmax's extras). */
const PREPARED_PER_UNIT = 9;
/** [B, K, units] tensors a task allocates per layer it passes (forward R(z), R(a); backward R(g), R(delta) and softmax's projections). */
const DIRECTIONAL_PER_UNIT = 18;
/** [B, K, inputs] tensors per layer of the backward pass (R(dL/d input) and the seed's delta V^T). */
const DIRECTIONAL_PER_INPUT = 3;
/** Element-wise operations per [B, K, unit] entry (activation and loss rules). */
const ELEMENTWISE_FLOPS_PER_UNIT = 20;

/** Efficiency bounds on K, independent of memory: enough rows for efficient matMuls, not more. */
const MAX_BLOCK_SIZE = 512;
const TARGET_ROWS = 32768;
/** Each [B, K, width] tensor within 8 MB (2M floats): larger ones do not run faster. */
const MAX_DIRECTIONAL_FLOATS = 2 * 1024 * 1024;

/** The shape of a model from its parameter tensors (every tensor, not only the selected ones). */
export function layerShapes(all: readonly ParameterTensor[]): LayerShape[] {
  const layers: LayerShape[] = [];
  for (const t of all) {
    if (t.kind === 'kernel') layers[t.layer] = { inputs: t.shape[0], units: t.shape[1], bias: false };
    else layers[t.layer].bias = true;
  }
  return layers;
}

export const augmented = (layer: LayerShape) => layer.inputs + (layer.bias ? 1 : 0);

/** Bytes the prepared model holds in a worker for the whole job: weights, activations, data. */
export function preparedBytes({ batch, layers, dataValues }: CostShape, size: number): number {
  let floats = 0;
  for (const layer of layers) {
    const n = augmented(layer);
    floats += 2 * batch * n + 2 * layer.inputs * layer.units + layer.units + PREPARED_PER_UNIT * batch * layer.units;
  }
  // The gradient over all parameters and the request's data, once as tensors, once as JS arrays.
  const parameters = layers.reduce((sum, l) => sum + augmented(l) * l.units, 0);
  return FLOAT * (floats + parameters + size + dataValues) + JS_NUMBER * dataValues;
}

/** Bytes one direction adds to a task whose directions start at layer `first`. */
function bytesPerDirection({ batch, layers, selected }: CostShape, first: number, size: number): number {
  let floats = size; // the task's rows
  for (let l = first; l < layers.length; l++) {
    const { inputs, units } = layers[l];
    floats += batch * (DIRECTIONAL_PER_UNIT * units + DIRECTIONAL_PER_INPUT * inputs);
    if (selected.some((t) => t.layer === l)) {
      // This layer's rows, [n+1, K*m] and [m, K*n]: the tensors and their copies read back to JS.
      floats += 2 * (augmented(layers[l]) * units + (l > first ? units * inputs : 0));
    }
  }
  return FLOAT * floats;
}

/** Operations one direction of a row block in layer `first` runs (only the columns of its layer and above). */
function flopsPerDirection({ batch, layers, selected }: CostShape, first: number): number {
  let flops = 0;
  for (let l = first; l < layers.length; l++) {
    const { inputs, units } = layers[l];
    const matMul = 2 * batch * inputs * units;
    flops += ELEMENTWISE_FLOPS_PER_UNIT * batch * units;
    if (l > first) flops += 2 * matMul; // R(z) forward, R(dL/d input) backward
    if (selected.some((t) => t.layer === l)) {
      flops += 2 * batch * augmented(layers[l]) * units + (l > first ? matMul : 0);
    }
  }
  return flops;
}

/**
 * The largest efficient K (enough rows for efficient matMuls, each [B, K, widest] directional tensor
 * within MAX_DIRECTIONAL_FLOATS, at most P) whose working set, fixed + K perDirection bytes, fits the budget.
 */
export function chooseBlockSize(
  sizes: { batch: number; widest: number; size: number; fixed: number; perDirection: number },
  budgetBytes: number,
): number {
  const { batch, widest, size, fixed, perDirection } = sizes;
  const efficient = Math.max(
    1,
    Math.min(MAX_BLOCK_SIZE, Math.ceil(TARGET_ROWS / batch), Math.floor(MAX_DIRECTIONAL_FLOATS / (batch * widest))),
  );
  const fitting = Math.floor((budgetBytes - fixed) / Math.max(perDirection, 1));
  return Math.max(1, Math.min(efficient, fitting, Math.max(size, 1)));
}

/** The block size the service uses: the largest efficient K whose working set fits `budgetBytes`. */
export function estimateCost(shape: CostShape, budgetBytes: number): CostEstimate {
  const { batch, layers, selected } = shape;
  const size = selected.reduce((sum, t) => sum + t.size, 0);
  const firstLayers = [...new Set(selected.map((t) => t.layer))];
  const fixed = preparedBytes(shape, size);
  const perDirection = Math.max(0, ...firstLayers.map((l) => bytesPerDirection(shape, l, size)));
  const widest = Math.max(1, ...layers.map((l) => Math.max(augmented(l), l.units)));
  const blockSize = chooseBlockSize({ batch, widest, size, fixed, perDirection }, budgetBytes);
  let flops = 0;
  for (const layer of layers) flops += 3 * 2 * batch * layer.inputs * layer.units; // forward, backward, gradient
  for (const t of selected) flops += t.size * flopsPerDirection(shape, t.layer);
  return { size, blockSize, peakBytes: fixed + blockSize * perDirection, minimumBytes: fixed + perDirection, flops };
}
