import { ACTIVATION_NAMES, activationRule } from '../../compute/activations/index.js';
import type { ActivationSpec, LayerConfigs, LayerType, NodeSpec } from '../../compute/spec.js';
import { describeValue } from '../model.js';
import { at, Issues, isObject, type Path } from './issues.js';

/**
 * Keras-style layer configs (snake_case, as Keras 2 and 3 and TF.js serialise them) as the engine's
 * node configs. Every option that changes what a layer computes is either read or refused by name;
 * options that only matter for training (initializers, constraints, momentum, dropout's seed) are
 * ignored.
 */

/** Options no layer's inference output depends on. */
const IGNORED = new Set([
  'name', 'trainable', 'dtype', 'batch_input_shape', 'batch_shape', 'input_shape', 'input_dim', 'input_length', 'seed', 'noise_shape',
  'momentum', 'fused', 'synchronized', 'renorm_clipping', 'renorm_momentum', 'sparse', 'ragged',
]);
const isIgnored = (key: string) => IGNORED.has(key) || key.endsWith('_initializer') || key.endsWith('_constraint');
/** Values an unread option may have that mean "not used". */
const isUnset = (value: unknown) => value === null || value === undefined || value === false || (isObject(value) && Object.keys(value).length === 0);

/** Reads one layer's config, recording refusals with the option's path and the layer's name and class. */
class LayerConfig {
  private readonly read = new Set<string>();

  constructor(
    readonly config: Record<string, unknown>,
    readonly path: Path,
    readonly layer: string,
    readonly className: string,
    readonly issues: Issues,
  ) {}

  refuse(key: string, why: string): void {
    this.read.add(key);
    const where = at(this.path, key);
    this.issues.add(where, `${where}: layer '${this.layer}' (${this.className}) ${why}`);
  }

  value(key: string): unknown {
    this.read.add(key);
    return this.config[key];
  }

  /** A positive integer; `fallback` when absent. */
  size(key: string, fallback?: number): number {
    const value = this.value(key) ?? fallback;
    if (typeof value === 'number' && Number.isInteger(value) && value >= 1) return value;
    this.refuse(key, `has ${key} ${describeValue(value)}; expected a positive integer`);
    return 1;
  }

  /** n or [rows, columns] (Keras writes lists); `fallback` when absent or null. */
  pair(key: string, fallback?: [number, number]): [number, number] {
    const value = this.value(key) ?? fallback;
    const ok = (d: unknown) => typeof d === 'number' && Number.isInteger(d) && d >= 1;
    if (ok(value)) return [value as number, value as number];
    if (Array.isArray(value) && value.length === 2 && value.every(ok)) return value as [number, number];
    if (Array.isArray(value) && value.length === 1 && ok(value[0])) return [value[0], value[0]];
    this.refuse(key, `has ${key} ${describeValue(value)}; expected n or [rows, columns]`);
    return [1, 1];
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.value(key) ?? fallback;
    if (typeof value === 'boolean') return value;
    this.refuse(key, `has ${key} ${describeValue(value)}; expected true or false`);
    return fallback;
  }

  number(key: string, fallback: number): number {
    const value = this.value(key) ?? fallback;
    if (typeof value === 'number' && Number.isFinite(value)) return value;
    this.refuse(key, `has ${key} ${describeValue(value)}; expected a number`);
    return fallback;
  }

  /** One of `accepted` (compared after JSON.stringify, so that [1, 1] matches); absent or null is `fallback`. */
  oneOf<T>(key: string, accepted: readonly T[], fallback: T, what: string): T {
    const value = this.value(key) ?? fallback;
    const match = accepted.find((a) => JSON.stringify(a) === JSON.stringify(value));
    if (match !== undefined) return match;
    this.refuse(key, `has ${key} ${describeValue(Array.isArray(value) ? JSON.stringify(value) : value)}, which is not supported; ${what}`);
    return fallback;
  }

  padding(): 'valid' | 'same' {
    return this.oneOf('padding', ['valid', 'same'] as const, 'valid', 'accepted: "valid", "same"');
  }

  channelsLast(): void {
    this.oneOf('data_format', ['channels_last'], 'channels_last', 'only "channels_last" ([batch, height, width, channels]) is supported');
  }

  /** An activation by Keras name (a string, or Keras 3's {"class_name": "function", "config": name}). */
  activation(key = 'activation'): ActivationSpec {
    const raw = this.value(key) ?? 'linear';
    const name = typeof raw === 'string' ? raw : isObject(raw) && raw.class_name === 'function' && typeof raw.config === 'string' ? raw.config : undefined;
    if (name !== undefined && ACTIVATION_NAMES.includes(name)) return { type: activationRule(name).name };
    this.refuse(key, `has activation ${describeValue(name ?? raw)}, which is not supported; accepted: ${ACTIVATION_NAMES.join(', ')}`);
    return { type: 'linear' };
  }

  /** The l2 factor of a kernel regularizer: Keras 3 {"class_name": "L2"}, Keras 2 / TF.js "L1L2" with l1 0. */
  l2(key: string): number {
    const raw = this.value(key);
    if (raw === null || raw === undefined) return 0;
    const config = isObject(raw) && isObject(raw.config) ? raw.config : {};
    const className = isObject(raw) ? raw.class_name : undefined;
    const l1 = config.l1 ?? 0;
    const l2 = config.l2 ?? (className === 'L2' ? 0.01 : 0);
    if ((className === 'L2' || className === 'L1L2') && l1 === 0 && typeof l2 === 'number' && l2 >= 0) return l2;
    this.refuse(key, `has ${key} ${describeValue(className ?? raw)}${className === 'L1L2' || className === 'L1' ? ` with l1 ${describeValue(l1)}` : ''}, which is not supported; only an L2 regularizer (l1 0) on the kernel is`);
    return 0;
  }

  /** Options that change the layer's output and that this service does not implement, when set. */
  refuseSet(...keys: string[]): void {
    for (const key of keys) if (!isUnset(this.config[key])) this.refuse(key, `has ${key} ${describeValue(this.config[key])}, which is not supported`);
  }

  /** Every option not read and not known to be irrelevant, when set, is refused: it might change the output. */
  finish(): void {
    for (const [key, value] of Object.entries(this.config)) {
      if (!this.read.has(key) && !isIgnored(key) && !isUnset(value)) {
        this.refuse(key, `has option ${key} = ${describeValue(Array.isArray(value) ? JSON.stringify(value) : value)}, which is not supported`);
      }
    }
  }
}

type Converter = (c: LayerConfig) => { type: LayerType; config: NodeSpec['config'] };

const pools =
  (type: 'maxPooling2d' | 'averagePooling2d'): Converter =>
  (c) => {
    c.channelsLast();
    const poolSize = c.pair('pool_size', [2, 2]);
    return { type, config: { poolSize, strides: c.pair('strides', poolSize), padding: c.padding() } };
  };

const globalPool =
  (type: 'globalAveragePooling2d' | 'globalMaxPooling2d'): Converter =>
  (c) => {
    c.channelsLast();
    c.refuseSet('keepdims');
    return { type, config: {} };
  };

const activationLayer = (activation: ActivationSpec): { type: 'activation'; config: LayerConfigs['activation'] } => ({ type: 'activation', config: { activation } });

/** Keras class name -> the engine's layer, for every class this service computes. */
const CONVERTERS: Record<string, Converter> = {
  Dense: (c) => {
    c.refuseSet('bias_regularizer', 'activity_regularizer', 'lora_rank', 'quantization_config');
    return { type: 'dense', config: { units: c.size('units'), activation: c.activation(), useBias: c.bool('use_bias', true), kernelL2: c.l2('kernel_regularizer') } };
  },
  Conv2D: (c) => {
    c.channelsLast();
    c.oneOf('dilation_rate', [1, [1, 1]], 1, 'only a dilation rate of 1 is supported');
    c.oneOf('groups', [1], 1, 'only groups 1 is supported');
    c.refuseSet('bias_regularizer', 'activity_regularizer', 'lora_rank');
    return {
      type: 'conv2d',
      config: {
        filters: c.size('filters'),
        kernelSize: c.pair('kernel_size'),
        strides: c.pair('strides', [1, 1]),
        padding: c.padding(),
        activation: c.activation(),
        useBias: c.bool('use_bias', true),
        kernelL2: c.l2('kernel_regularizer'),
      },
    };
  },
  MaxPooling2D: pools('maxPooling2d'),
  AveragePooling2D: pools('averagePooling2d'),
  GlobalAveragePooling2D: globalPool('globalAveragePooling2d'),
  GlobalMaxPooling2D: globalPool('globalMaxPooling2d'),
  Flatten: (c) => {
    c.channelsLast();
    return { type: 'flatten', config: {} };
  },
  Reshape: (c) => {
    const target = c.value('target_shape');
    const ok = Array.isArray(target) && target.length >= 1 && target.every((d) => d === -1 || (Number.isInteger(d) && d >= 1)) && target.filter((d) => d === -1).length <= 1;
    if (!ok) c.refuse('target_shape', `has target_shape ${describeValue(JSON.stringify(target))}; expected positive sizes with at most one -1`);
    return { type: 'reshape', config: { targetShape: ok ? (target as number[]) : [-1] } };
  },
  Dropout: (c) => ({ type: 'dropout', config: { rate: c.number('rate', 0) } }),
  Activation: (c) => activationLayer(c.activation()),
  ReLU: (c) => {
    c.refuseSet('max_value', 'negative_slope', 'threshold');
    return activationLayer({ type: 'relu' });
  },
  LeakyReLU: (c) => activationLayer({ type: 'leakyRelu', alpha: c.number(c.config.negative_slope !== undefined ? 'negative_slope' : 'alpha', 0.3) }),
  ELU: (c) => activationLayer({ type: 'elu', alpha: c.number('alpha', 1) }),
  Softmax: (c) => {
    c.oneOf('axis', [-1, [-1]], -1, 'only the last axis (-1) is supported');
    return activationLayer({ type: 'softmax' });
  },
  BatchNormalization: (c) => {
    const axis = c.value('axis') ?? -1;
    const single = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
    if (typeof single !== 'number' || !Number.isInteger(single)) c.refuse('axis', `normalizes axis ${describeValue(JSON.stringify(axis))}; only one axis, the last, is supported`);
    c.refuseSet('renorm', 'virtual_batch_size', 'adjustment', 'beta_regularizer', 'gamma_regularizer');
    return {
      type: 'batchNormalization',
      config: { axis: typeof single === 'number' ? single : -1, epsilon: c.number('epsilon', 0.001), center: c.bool('center', true), scale: c.bool('scale', true) },
    };
  },
  Embedding: (c) => {
    c.refuseSet('mask_zero', 'embeddings_regularizer', 'activity_regularizer', 'lora_rank', 'sparse');
    return { type: 'embedding', config: { inputDim: c.size('input_dim'), outputDim: c.size('output_dim') } };
  },
  Add: () => ({ type: 'add', config: {} }),
  Multiply: () => ({ type: 'multiply', config: {} }),
  Concatenate: (c) => ({ type: 'concatenate', config: { axis: c.number('axis', -1) } }),
};

/** The Keras classes this service computes, for the refusals' lists. */
export const KERAS_CLASSES = Object.keys(CONVERTERS);

/**
 * One Keras-style layer as a node without weights or inputs; null after recording why not (an
 * unsupported class, or option, by its path).
 */
export function kerasLayer(className: string, config: Record<string, unknown>, path: Path, configPath: Path, issues: Issues): Omit<NodeSpec, 'inputs' | 'weights'> | null {
  const name = typeof config.name === 'string' ? config.name : '';
  const convert = CONVERTERS[className];
  if (!convert) {
    issues.add(at(path, 'class_name'), `${at(path, 'class_name')}: layer '${name}' is a ${describeValue(className)}, which is not supported; supported layers: ${KERAS_CLASSES.join(', ')}`);
    return null;
  }
  const before = issues.count;
  const reader = new LayerConfig(config, configPath, name, className, issues);
  const { type, config: nodeConfig } = convert(reader);
  reader.finish();
  const trainable = config.trainable ?? true;
  if (typeof trainable !== 'boolean') reader.refuse('trainable', `has trainable ${describeValue(trainable)}; expected true or false`);
  if (issues.count > before) return null;
  return { name, type, config: nodeConfig, trainable } as Omit<NodeSpec, 'inputs' | 'weights'>;
}
