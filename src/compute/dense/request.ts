import type { ActivationSpec, EngineRequest, LossSpec, Matrix, NodeSpec } from '../spec.js';

/**
 * The compact request of the dense path (PreparedModel, the structured assembly, cost.ts): a chain of
 * dense layers on a rank-1 float input, every layer trainable, every tensor a typed array. It is the
 * engine's fast special case of an EngineRequest: denseStack() finds it in a graph, engineRequest()
 * writes it back as one.
 */
export interface DenseLayerSpec {
  type: 'dense';
  units: number;
  activation: string | ActivationSpec;
  useBias: boolean;
  /** Defaults to dense_<index+1>. */
  name?: string;
  kernelRegularizer?: { l2: number };
  /** [inputs, units]; left out: Glorot-uniform from the model seed. */
  kernel?: Matrix;
  /** [units]; left out: zeros. */
  bias?: Float32Array;
}

export interface DenseRequest {
  model: { inputShape: [number]; layers: DenseLayerSpec[]; seed: number };
  loss: string | LossSpec;
  /** y: [batch, units] targets, or [batch, 1] integer labels. */
  data: { x: Matrix; y: Matrix };
  wrt?: string[];
}

/** The loss spec in its object form. */
export const normalizeLoss = (loss: string | LossSpec): LossSpec => (typeof loss === 'string' ? { type: loss } : loss);

/** Why a graph is not a dense stack: the first node (or the input) that is not part of one, or null. */
export function firstNonDense(request: EngineRequest): { node: NodeSpec | null; reason: string } | null {
  const { input, nodes, output } = request.model;
  if (input.shape.length !== 1 || input.dtype !== 'float32' || !(request.data.x.values instanceof Float32Array)) {
    return { node: null, reason: `its input is ${input.dtype} [${input.shape.join(', ')}], not float32 [features]` };
  }
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i];
    const previous = i === 0 ? input.name : nodes[i - 1].name;
    if (node.type !== 'dense') return { node, reason: `layer '${node.name}' is ${node.type}` };
    if (!node.trainable) return { node, reason: `layer '${node.name}' is not trainable` };
    if (node.inputs.length !== 1 || node.inputs[0] !== previous) return { node, reason: `layer '${node.name}' does not take the previous layer's output alone` };
  }
  if (!nodes.length || nodes[nodes.length - 1].name !== output) return { node: null, reason: 'its output is not its last layer' };
  return null;
}

/**
 * The request as the dense path takes it when its model is a dense stack (see DenseRequest), else null:
 * such a model is computed by the general graph engine instead. Shares the typed arrays.
 */
export function denseStack(request: EngineRequest): DenseRequest | null {
  if (firstNonDense(request)) return null;
  const { model, data, loss, wrt } = request;
  let inputs = model.input.shape[0];
  const layers = model.nodes.map((node): DenseLayerSpec => {
    if (node.type !== 'dense') throw new Error('unreachable: firstNonDense checked every node');
    const { units, activation, useBias, kernelL2 } = node.config;
    const { kernel, bias } = node.weights;
    const layer: DenseLayerSpec = {
      type: 'dense',
      units,
      activation,
      useBias,
      name: node.name,
      ...(kernelL2 ? { kernelRegularizer: { l2: kernelL2 } } : {}),
      ...(kernel ? { kernel: { rows: inputs, columns: units, values: kernel } } : {}),
      ...(bias && useBias ? { bias } : {}),
    };
    inputs = units;
    return layer;
  });
  const [batch, features] = data.x.shape;
  return {
    model: { inputShape: [model.input.shape[0]], layers, seed: model.seed },
    loss,
    data: { x: { rows: batch, columns: features, values: data.x.values as Float32Array }, y: data.y },
    ...(wrt ? { wrt } : {}),
  };
}

/** A dense request as the engine's graph (the inverse of denseStack; names default to dense_<index+1>). */
export function engineRequest(request: DenseRequest): EngineRequest {
  const { model, data, wrt } = request;
  const names = model.layers.map((layer, l) => layer.name ?? `dense_${l + 1}`);
  const nodes: NodeSpec[] = model.layers.map((layer, l) => ({
    name: names[l],
    type: 'dense',
    inputs: [l === 0 ? 'input' : names[l - 1]],
    config: {
      units: layer.units,
      activation: typeof layer.activation === 'string' ? { type: layer.activation } : layer.activation,
      useBias: layer.useBias,
      kernelL2: layer.kernelRegularizer?.l2 ?? 0,
    },
    weights: { ...(layer.kernel ? { kernel: layer.kernel.values } : {}), ...(layer.bias ? { bias: layer.bias } : {}) },
    trainable: true,
  }));
  return {
    model: { input: { name: 'input', shape: [model.inputShape[0]], dtype: 'float32' }, nodes, output: names[names.length - 1], seed: model.seed },
    loss: normalizeLoss(request.loss),
    data: { x: { shape: [data.x.rows, data.x.columns], values: data.x.values }, y: data.y },
    ...(wrt ? { wrt } : {}),
  };
}
