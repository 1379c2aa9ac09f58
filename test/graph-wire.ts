/**
 * TEST-ONLY: our own JSON wire format (extended, /work/wt/briefs/wire.md) -> EngineRequest, for the
 * graph engine's tests until the importers' importRequest lands in src/schemas; delete it then.
 * It does no validation beyond what the tests need.
 */
import type { EngineRequest, GraphModel, LayerType, NodeSpec, WeightName } from '../src/compute/spec.js';

const pair = (v: unknown, fallback: [number, number]): [number, number] =>
  v === undefined ? fallback : typeof v === 'number' ? [v, v] : (v as [number, number]);

const activation = (a: unknown) => (a === undefined ? { type: 'linear' } : typeof a === 'string' ? { type: a } : (a as { type: string; alpha?: number }));

function tensor(value: any): { shape: number[]; values: Float32Array | Int32Array } {
  if (value && typeof value === 'object' && !Array.isArray(value) && 'data' in value) {
    const bytes = Buffer.from(value.data, 'base64');
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    return { shape: value.shape, values: value.dtype === 'int32' ? new Int32Array(buffer) : new Float32Array(buffer) };
  }
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  return { shape, values: Float32Array.from((value as unknown[]).flat(Infinity) as number[]) };
}

const WEIGHT_FIELDS: [string, WeightName][] = [
  ['kernel', 'kernel'],
  ['bias', 'bias'],
  ['gamma', 'gamma'],
  ['beta', 'beta'],
  ['movingMean', 'moving_mean'],
  ['movingVariance', 'moving_variance'],
  ['embeddings', 'embeddings'],
];

function config(type: LayerType, layer: any, rank: number): any {
  const axis = (a: number | undefined) => (a === undefined || a < 0 ? rank + (a ?? -1) + 1 : a);
  switch (type) {
    case 'dense':
      return { units: layer.units, activation: activation(layer.activation), useBias: layer.useBias ?? true, kernelL2: layer.kernelRegularizer?.l2 ?? 0 };
    case 'conv2d':
      return {
        filters: layer.filters,
        kernelSize: pair(layer.kernelSize, [1, 1]),
        strides: pair(layer.strides, [1, 1]),
        padding: layer.padding ?? 'valid',
        activation: activation(layer.activation),
        useBias: layer.useBias ?? true,
        kernelL2: layer.kernelRegularizer?.l2 ?? 0,
      };
    case 'maxPooling2d':
    case 'averagePooling2d': {
      const poolSize = pair(layer.poolSize, [2, 2]);
      return { poolSize, strides: pair(layer.strides, poolSize), padding: layer.padding ?? 'valid' };
    }
    case 'reshape':
      return { targetShape: layer.targetShape };
    case 'dropout':
      return { rate: layer.rate ?? 0 };
    case 'activation':
      return { activation: activation(layer.activation) };
    case 'batchNormalization':
      return { axis: axis(layer.axis), epsilon: layer.epsilon ?? 0.001, center: layer.center ?? true, scale: layer.scale ?? true };
    case 'embedding':
      return { inputDim: layer.inputDim, outputDim: layer.outputDim };
    case 'concatenate':
      return { axis: axis(layer.axis) };
    default:
      return {};
  }
}

/** Rank (with the batch) of each layer's output, for normalising negative axes: enough for the test models. */
export function wireToEngine(body: any): EngineRequest {
  const wire = body.model;
  const first = wire.layers[0]?.type;
  const input = { name: wire.inputName ?? 'input', shape: wire.inputShape, dtype: wire.inputDtype ?? (first === 'embedding' ? 'int32' : 'float32') };
  const ranks = new Map<string, number>([[input.name, input.shape.length + 1]]);
  const nodes: NodeSpec[] = wire.layers.map((layer: any, i: number) => {
    const name = layer.name ?? `${layer.type}_${i + 1}`;
    const inputs: string[] = layer.inputs ?? [i === 0 ? input.name : (wire.layers[i - 1].name ?? `${wire.layers[i - 1].type}_${i}`)];
    const rank = ranks.get(inputs[0])!;
    ranks.set(name, outputRank(layer, rank));
    const weights: Partial<Record<WeightName, Float32Array>> = {};
    for (const [field, weight] of WEIGHT_FIELDS) if (layer[field] !== undefined) weights[weight] = Float32Array.from(tensor(layer[field]).values);
    return { name, type: layer.type, inputs, config: config(layer.type, layer, rank - 1), weights, trainable: layer.trainable ?? true } as NodeSpec;
  });
  const model: GraphModel = { input, nodes, output: nodes[nodes.length - 1].name, seed: wire.seed ?? 0 };
  const loss = typeof body.loss === 'string' ? { type: body.loss } : body.loss;
  const x = tensor(body.data.x);
  const xValues = input.dtype === 'int32' && x.values instanceof Float32Array ? Int32Array.from(x.values) : x.values;
  const y = tensor(body.data.y);
  const rows = y.shape[0];
  return { model, loss, data: { x: { shape: x.shape, values: xValues }, y: { rows, columns: y.values.length / rows, values: Float32Array.from(y.values) } }, wrt: body.wrt };
}

function outputRank(layer: any, rank: number): number {
  switch (layer.type) {
    case 'flatten':
    case 'globalAveragePooling2d':
    case 'globalMaxPooling2d':
      return 2;
    case 'reshape':
      return layer.targetShape.length + 1;
    case 'embedding':
      return rank + 1;
    default:
      return rank;
  }
}
