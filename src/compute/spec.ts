/**
 * The engine's own description of a request: one model graph, a loss, a batch and the tensors to
 * differentiate. The importers in src/schemas turn every wire format (our JSON, a TF.js model.json,
 * a Keras to_json) into this; the engine computes from this and never sees a wire format.
 */

/** A 2-D float32 tensor, row-major. */
export interface Matrix {
  rows: number;
  columns: number;
  values: Float32Array;
}

/** A tensor of any rank, row-major; the first dimension of data is the batch. */
export interface TensorData {
  shape: number[];
  values: Float32Array | Int32Array;
}

/** An activation by canonical name (see compute/activations), with its parameter when it has one. */
export interface ActivationSpec {
  type: string;
  alpha?: number;
}

export interface LossSpec {
  type: string;
  fromLogits?: boolean;
  delta?: number;
}

export type Padding = 'valid' | 'same';

/**
 * Each layer type's configuration, with TF.js's field names (camelCase). Sizes are normalised: a
 * kernel size, pool size or stride is always [rows, columns]; axes are non-negative and count the
 * batch (axis 3 is the channels of [B, H, W, C]).
 */
export interface LayerConfigs {
  dense: { units: number; activation: ActivationSpec; useBias: boolean; kernelL2: number };
  conv2d: { filters: number; kernelSize: [number, number]; strides: [number, number]; padding: Padding; activation: ActivationSpec; useBias: boolean; kernelL2: number };
  maxPooling2d: { poolSize: [number, number]; strides: [number, number]; padding: Padding };
  averagePooling2d: { poolSize: [number, number]; strides: [number, number]; padding: Padding };
  globalAveragePooling2d: Record<string, never>;
  globalMaxPooling2d: Record<string, never>;
  flatten: Record<string, never>;
  /** targetShape excludes the batch; at most one -1. */
  reshape: { targetShape: number[] };
  /** Identity: the Hessian is of the inference-mode loss. */
  dropout: { rate: number };
  activation: { activation: ActivationSpec };
  /** Inference mode: y = gamma (x - movingMean) / sqrt(movingVariance + epsilon) + beta over `axis`. */
  batchNormalization: { axis: number; epsilon: number; center: boolean; scale: boolean };
  /** Input: integer ids in [0, inputDim); output [.., outputDim]. */
  embedding: { inputDim: number; outputDim: number };
  add: Record<string, never>;
  multiply: Record<string, never>;
  concatenate: { axis: number };
}

export type LayerType = keyof LayerConfigs;

export const LAYER_TYPES = [
  'dense',
  'conv2d',
  'maxPooling2d',
  'averagePooling2d',
  'globalAveragePooling2d',
  'globalMaxPooling2d',
  'flatten',
  'reshape',
  'dropout',
  'activation',
  'batchNormalization',
  'embedding',
  'add',
  'multiply',
  'concatenate',
] as const satisfies readonly LayerType[];

/** One layer of the graph, applied to the outputs of `inputs` (node names, or the model input's name). */
export type NodeSpec = {
  [T in LayerType]: {
    name: string;
    type: T;
    inputs: string[];
    config: LayerConfigs[T];
    /**
     * Weight values by weight name (see WEIGHT_NAMES), row-major in the layer's own layout (a conv2d
     * kernel is [kh, kw, in, out]); a weight left out is initialised from the model seed (kernels and
     * embeddings Glorot-uniform, gamma and moving variance ones, the rest zeros).
     */
    weights: Partial<Record<WeightName, Float32Array>>;
    /** A layer that is not trainable keeps all its weights constant (Keras's `trainable: false`). */
    trainable: boolean;
  };
}[LayerType];

export type WeightName = 'kernel' | 'bias' | 'gamma' | 'beta' | 'moving_mean' | 'moving_variance' | 'embeddings';

/**
 * A layer's weights in the order it declares them (Keras's get_weights() order), and which of them
 * are parameters: the Hessian is over the trainable ones, named "<layer name>/<weight name>" and
 * ordered layer by layer in node order, then in this order (the order of TF.js's trainableWeights).
 */
export function layerWeights(node: NodeSpec): { name: WeightName; trainable: boolean }[] {
  const trainable = node.trainable;
  switch (node.type) {
    case 'dense':
    case 'conv2d':
      return [{ name: 'kernel', trainable }, ...(node.config.useBias ? [{ name: 'bias' as const, trainable }] : [])];
    case 'batchNormalization':
      return [
        ...(node.config.scale ? [{ name: 'gamma' as const, trainable }] : []),
        ...(node.config.center ? [{ name: 'beta' as const, trainable }] : []),
        { name: 'moving_mean', trainable: false },
        { name: 'moving_variance', trainable: false },
      ];
    case 'embedding':
      return [{ name: 'embeddings', trainable }];
    default:
      return [];
  }
}

export interface GraphModel {
  /** The model input: its name (what the first nodes list in `inputs`), shape without the batch, dtype. */
  input: { name: string; shape: number[]; dtype: 'float32' | 'int32' };
  /** In topological order (every node after its inputs), as the model lists its layers. */
  nodes: NodeSpec[];
  /** The node whose output is the model output. */
  output: string;
  /** Seed for weights left out. */
  seed: number;
}

export interface EngineRequest {
  model: GraphModel;
  loss: LossSpec;
  /** x shaped [batch, ...model.input.shape]; y [batch, units] targets, or [batch, 1] integer labels. */
  data: { x: TensorData; y: Matrix };
  /** Parameter names to keep, in this order; all trainable parameters without it. */
  wrt?: string[];
}
