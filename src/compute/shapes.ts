/**
 * Shapes in a model graph, from its structure alone (no tensor is made): each node's output shape and
 * each of its weights' shapes. Shapes here leave out the batch; a config's axis counts it (spec.ts).
 * The importers use these to name a bad weight or input by its field before the engine runs; the
 * engine can use them to size its tensors.
 */
import type { NodeSpec, WeightName } from './spec.js';
import { layerWeights } from './spec.js';

/** What a node's output or weights cannot be, in a sentence (the caller adds where). */
export class ShapeError extends Error {}

const show = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Output rows (or columns) of a window sliding over `size` cells, with TensorFlow's padding. */
export function windowOutput(size: number, window: number, stride: number, padding: 'valid' | 'same'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - window) / stride) + 1;
}

function image(node: NodeSpec, input: readonly number[]): [number, number, number] {
  if (input.length !== 3) throw new ShapeError(`${node.type} takes [height, width, channels] inputs, but its input is ${show(input)}`);
  return input as [number, number, number];
}

function windowed(node: NodeSpec, input: readonly number[], window: [number, number], strides: [number, number], padding: 'valid' | 'same', what: string) {
  const [h, w] = image(node, input);
  if (padding === 'valid' && (window[0] > h || window[1] > w)) {
    throw new ShapeError(`its ${what} ${show(window)} is larger than its input ${show(input)} with padding "valid"`);
  }
  return [windowOutput(h, window[0], strides[0], padding), windowOutput(w, window[1], strides[1], padding)];
}

/** The output shape of `node` given its inputs' shapes (as many as node.inputs). */
export function outputShape(node: NodeSpec, inputs: readonly (readonly number[])[]): number[] {
  const input = inputs[0];
  switch (node.type) {
    case 'dense':
      return [...input.slice(0, -1), node.config.units];
    case 'conv2d':
      return [...windowed(node, input, node.config.kernelSize, node.config.strides, node.config.padding, 'kernel'), node.config.filters];
    case 'maxPooling2d':
    case 'averagePooling2d':
      return [...windowed(node, input, node.config.poolSize, node.config.strides, node.config.padding, 'pool'), input[2]];
    case 'globalAveragePooling2d':
    case 'globalMaxPooling2d':
      return [image(node, input)[2]];
    case 'flatten':
      return [product(input)];
    case 'reshape': {
      const { targetShape } = node.config;
      const known = product(targetShape.filter((d) => d !== -1));
      const total = product(input);
      const free = targetShape.includes(-1) ? total / known : known;
      if (!Number.isInteger(free) || (!targetShape.includes(-1) && known !== total)) {
        throw new ShapeError(`its targetShape ${show(targetShape)} does not hold the ${total} values of its input ${show(input)}`);
      }
      return targetShape.map((d) => (d === -1 ? free : d));
    }
    case 'dropout':
    case 'activation':
      return [...input];
    case 'batchNormalization':
      if (node.config.axis !== input.length) {
        throw new ShapeError(`normalizes axis ${node.config.axis}, but only the last axis (${input.length} of its input ${show(input)}) is supported`);
      }
      return [...input];
    case 'embedding':
      return [...input, node.config.outputDim];
    case 'add':
    case 'multiply': {
      if (inputs.length < 2) throw new ShapeError(`${node.type} takes two or more inputs, but has ${inputs.length}`);
      const other = inputs.find((s) => s.length !== input.length || s.some((d, i) => d !== input[i]));
      if (other) throw new ShapeError(`${node.type} takes inputs of equal shape, but they are ${inputs.map(show).join(' and ')}`);
      return [...input];
    }
    case 'concatenate': {
      if (inputs.length < 2) throw new ShapeError(`concatenate takes two or more inputs, but has ${inputs.length}`);
      const axis = node.config.axis - 1;
      const fits = (s: readonly number[]) => s.length === input.length && s.every((d, i) => i === axis || d === input[i]);
      if (axis < 0 || axis >= input.length || !inputs.every(fits)) {
        throw new ShapeError(`concatenate on axis ${node.config.axis} takes inputs equal but on that axis, but they are ${inputs.map(show).join(' and ')}`);
      }
      return input.map((d, i) => (i === axis ? inputs.reduce((n, s) => n + s[i], 0) : d));
    }
  }
}

/** The shape of each of a node's weights (layerWeights order), given its first input's shape. */
export function weightShapes(node: NodeSpec, input: readonly number[]): Partial<Record<WeightName, number[]>> {
  const shapes: Partial<Record<WeightName, number[]>> = {};
  const channels = input[input.length - 1];
  for (const { name } of layerWeights(node)) {
    if (node.type === 'dense') shapes[name] = name === 'kernel' ? [channels, node.config.units] : [node.config.units];
    else if (node.type === 'conv2d') shapes[name] = name === 'kernel' ? [...node.config.kernelSize, channels, node.config.filters] : [node.config.filters];
    else if (node.type === 'embedding') shapes[name] = [node.config.inputDim, node.config.outputDim];
    else shapes[name] = [channels];
  }
  return shapes;
}
