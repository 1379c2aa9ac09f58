import { z } from 'zod';
import { activationRule } from '../../compute/activations/index.js';
import { LAYER_TYPES, type ActivationSpec, type LayerType, type NodeSpec, type WeightName } from '../../compute/spec.js';
import { ActivationSpec as ActivationField, describeValue } from '../model.js';
import { BinaryTensorN } from '../tensor.js';
import { buildGraph, type GraphDraft, type NodeDraft } from './graph.js';
import { at, Issues, isObject, type Path } from './issues.js';
import { readWeight, type Mismatch } from './values.js';

/**
 * Our own JSON model (the wire format for people without TF.js or Keras): today's dense stacks, and
 * the layer types of issue #9 with TF.js's layer config names in camelCase (see the README).
 */

const Name = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only, at most 64 characters');
const Size = z.number().int().min(1).max(1_000_000);
const Pair = z.union([Size, z.tuple([Size, Size])]).describe('n, or [rows, columns]');
const Padding = z.enum(['valid', 'same'], { error: (issue) => `${describeValue(issue.input)} is not supported; accepted: valid, same` }).describe('"valid" (no padding) or "same" (TensorFlow\'s padding: the extra cell after)');
const Weight = (layout: string) =>
  z
    .union([z.array(z.unknown()), BinaryTensorN])
    .optional()
    .describe(`${layout}, nested arrays or a float32 binary tensor; omitted: drawn from the model seed`);
const L2 = z
  .object({ l2: z.number().min(0).describe('adds l2 · Σ kernel² to the loss (Keras: no 1/2, biases not regularized)') })
  .strict()
  .optional();

const common = {
  name: Name.optional().describe('Defaults to <type>_<position>, e.g. dense_1, conv2d_2'),
  inputs: z.array(Name).min(1).optional().describe('Names of the layers (or the model input) it takes; default: the previous layer'),
  trainable: z.boolean().default(true).describe('false: all its weights are constants'),
};
const ACTIVATION = ActivationField.default('linear');
const only = <T extends string | number>(value: T, what: string) =>
  z.literal(value, { error: (issue) => `${describeValue(issue.input)} is not supported; ${what}` });

const layerSchemas = {
  dense: {
    units: Size,
    activation: ACTIVATION,
    useBias: z.boolean().default(true),
    kernel: Weight('[inputs][units]: y = x · kernel + bias'),
    bias: Weight('[units]; omitted: zeros'),
    kernelRegularizer: L2,
  },
  conv2d: {
    filters: Size,
    kernelSize: Pair,
    strides: Pair.default(1),
    padding: Padding.default('valid'),
    dataFormat: only('channelsLast', 'only channelsLast ([batch, height, width, channels]) is').optional(),
    dilationRate: z.union([only(1, 'only a dilation rate of 1 is'), z.tuple([only(1, 'only 1 is'), only(1, 'only 1 is')])]).optional(),
    activation: ACTIVATION,
    useBias: z.boolean().default(true),
    kernel: Weight('[kh][kw][in][filters]'),
    bias: Weight('[filters]; omitted: zeros'),
    kernelRegularizer: L2,
  },
  maxPooling2d: { poolSize: Pair.default(2), strides: Pair.optional().describe('default: poolSize'), padding: Padding.default('valid') },
  averagePooling2d: { poolSize: Pair.default(2), strides: Pair.optional().describe('default: poolSize'), padding: Padding.default('valid') },
  globalAveragePooling2d: {},
  globalMaxPooling2d: {},
  flatten: {},
  reshape: {
    targetShape: z
      .array(z.number().int().min(-1).max(1_000_000).refine((d) => d !== 0, 'a dimension is at least 1 (or -1)'))
      .min(1)
      .max(4)
      .refine((shape) => shape.filter((d) => d === -1).length <= 1, 'has more than one -1; at most one dimension can be inferred'),
  },
  dropout: { rate: z.number().min(0).max(1).describe('ignored: the Hessian is of the inference-mode loss') },
  activation: { activation: ActivationField },
  batchNormalization: {
    axis: only(-1, 'only the last axis (-1) is').default(-1),
    epsilon: z.number().positive().default(0.001),
    center: z.boolean().default(true),
    scale: z.boolean().default(true),
    gamma: Weight('[channels]; omitted: ones'),
    beta: Weight('[channels]; omitted: zeros'),
    movingMean: Weight('[channels]; omitted: zeros'),
    movingVariance: Weight('[channels]; omitted: ones'),
  },
  embedding: { inputDim: Size, outputDim: Size, embeddings: Weight('[inputDim][outputDim]') },
  add: { inputs: z.array(Name).min(2) },
  multiply: { inputs: z.array(Name).min(2) },
  concatenate: { inputs: z.array(Name).min(2), axis: z.number().int().default(-1).describe('default -1, the last') },
} satisfies Record<LayerType, z.ZodRawShape>;

const layerSchema = <T extends LayerType>(type: T) => z.object({ type: z.literal(type), ...common, ...layerSchemas[type] }).strict();
const LAYER_SCHEMAS = Object.fromEntries(LAYER_TYPES.map((type) => [type, layerSchema(type)])) as { [T in LayerType]: ReturnType<typeof layerSchema<T>> };

/** One layer of our JSON: `type` says which (documented as a union on it). */
export const OurLayer = z.discriminatedUnion('type', Object.values(LAYER_SCHEMAS) as unknown as [z.ZodObject, ...z.ZodObject[]]);

export const OurModel = z
  .object({
    inputShape: z.array(Size).min(1).max(3).describe('The shape of one example: [features], [height, width, channels], [tokens], ...'),
    inputDtype: z.enum(['float32', 'int32']).optional().describe('int32 for token ids (default when the first layer is an embedding), else float32'),
    inputName: Name.default('input').describe('What layers list in `inputs` for the model input'),
    layers: z.array(z.unknown()).min(1).max(256).describe('Applied in order; the last one is the output'),
    seed: z.number().int().min(0).max(2 ** 31).default(0).describe('Seed for weights the request leaves out'),
  })
  .strict()
  .meta({ id: 'JsonModel', description: 'Our own JSON model: inputShape and layers of the supported types (TF.js config names, camelCase)' });

/** Whether a model object is in our JSON format (rather than TF.js's or Keras's). */
export const isOurModel = (model: Record<string, unknown>) => 'layers' in model || 'inputShape' in model;

const WEIGHT_FIELDS: Record<WeightName, string> = {
  kernel: 'kernel',
  bias: 'bias',
  gamma: 'gamma',
  beta: 'beta',
  moving_mean: 'movingMean',
  moving_variance: 'movingVariance',
  embeddings: 'embeddings',
};

type Layer = { [T in LayerType]: z.output<(typeof LAYER_SCHEMAS)[T]> }[LayerType];

const pair = (value: number | [number, number]): [number, number] => (typeof value === 'number' ? [value, value] : value);
const activation = (spec: z.output<typeof ActivationField>): ActivationSpec =>
  typeof spec === 'string' ? { type: activationRule(spec).name } : { ...spec, type: activationRule(spec.type).name };
const kernelL2 = (layer: { kernelRegularizer?: { l2: number } }) => layer.kernelRegularizer?.l2 ?? 0;

/** The engine's configuration of a validated layer. */
function nodeConfig(layer: Layer): NodeSpec['config'] {
  switch (layer.type) {
    case 'dense':
      return { units: layer.units, activation: activation(layer.activation), useBias: layer.useBias, kernelL2: kernelL2(layer) };
    case 'conv2d':
      return {
        filters: layer.filters,
        kernelSize: pair(layer.kernelSize),
        strides: pair(layer.strides),
        padding: layer.padding,
        activation: activation(layer.activation),
        useBias: layer.useBias,
        kernelL2: kernelL2(layer),
      };
    case 'maxPooling2d':
    case 'averagePooling2d':
      return { poolSize: pair(layer.poolSize), strides: pair(layer.strides ?? layer.poolSize), padding: layer.padding };
    case 'reshape':
      return { targetShape: layer.targetShape };
    case 'dropout':
      return { rate: layer.rate };
    case 'activation':
      return { activation: activation(layer.activation) };
    case 'batchNormalization':
      return { axis: layer.axis, epsilon: layer.epsilon, center: layer.center, scale: layer.scale };
    case 'embedding':
      return { inputDim: layer.inputDim, outputDim: layer.outputDim };
    case 'concatenate':
      return { axis: layer.axis };
    default:
      return {};
  }
}

/**
 * Today's messages for a dense kernel or bias of the wrong size: rows against what comes in (the
 * input's features or the previous layer's units), entries against the layer's units.
 */
function denseMismatch(draft: NodeDraft, previous: NodeSpec | undefined, input: string): Mismatch {
  return (path, axis, found, expected) => {
    if (path.endsWith('.bias')) return `${path} has ${found} entries but the layer has ${expected} units`;
    if (axis === 1) return `${path} has ${found} entries but the layer has ${expected} units`;
    const inputNode = draft.node.inputs[0];
    const source =
      inputNode === input
        ? `the input has ${expected} features`
        : previous?.name === inputNode && previous.type === 'dense'
          ? `the previous layer has ${expected} units`
          : `its input '${inputNode}' has ${expected} features`;
    return `${path} has ${found} rows but ${source}`;
  };
}

/** Our JSON model as the engine's GraphModel; problems go to `issues` (null when there were any). */
export function importOurModel(value: unknown, path: Path, issues: Issues) {
  const parsed = OurModel.safeParse(value);
  if (!parsed.success) {
    issues.addZod(path, parsed.error);
    return null;
  }
  const model = parsed.data;
  const before = issues.count;
  const layersPath = at(path, 'layers');
  const drafts: (NodeDraft & { layer: Layer })[] = [];
  model.layers.forEach((raw, l) => {
    const layerPath = at(layersPath, l);
    const type = isObject(raw) ? raw.type : undefined;
    if (!isObject(raw) || typeof type !== 'string' || !(LAYER_TYPES as readonly string[]).includes(type)) {
      const message = isObject(raw)
        ? `${describeValue(type)} is not a supported layer type; accepted: ${LAYER_TYPES.join(', ')}`
        : `expected a layer object {"type": ..., ...}, got ${describeValue(raw)}`;
      issues.add(isObject(raw) ? at(layerPath, 'type') : layerPath, message);
      return;
    }
    const layerResult = LAYER_SCHEMAS[type as LayerType].safeParse(raw);
    if (!layerResult.success) {
      issues.addZod(layerPath, layerResult.error);
      return;
    }
    const layer = layerResult.data as Layer;
    const node = {
      name: layer.name ?? `${layer.type}_${l + 1}`,
      type: layer.type,
      inputs: layer.inputs ?? [drafts.at(-1)?.node.name ?? model.inputName],
      config: nodeConfig(layer),
      weights: {},
      trainable: layer.trainable,
    } as NodeSpec;
    if ((layer.type === 'dense' || layer.type === 'conv2d') && layer.bias !== undefined && !layer.useBias) {
      issues.add(at(layerPath, 'bias'), `${at(layerPath, 'bias')} is given but useBias is false`);
    }
    drafts.push({ node, layer, path: layerPath, namePath: at(layerPath, 'name'), inputsPath: at(layerPath, 'inputs') });
  });
  if (issues.count > before) return null;
  const firstIsEmbedding = drafts[0]?.node.type === 'embedding';
  const draft: GraphDraft = {
    input: { name: model.inputName, shape: model.inputShape, dtype: model.inputDtype ?? (firstIsEmbedding ? 'int32' : 'float32') },
    inputPath: at(path, model.inputDtype ? 'inputDtype' : 'inputShape'),
    nodes: drafts,
    output: drafts[drafts.length - 1].node.name,
    outputPath: at(layersPath, drafts.length - 1),
    seed: model.seed,
  };
  return buildGraph(draft, issues, (d, expected) => {
    const { layer } = d as NodeDraft & { layer: Layer };
    const index = drafts.indexOf(d as NodeDraft & { layer: Layer });
    for (const [name, shape] of Object.entries(expected) as [WeightName, number[]][]) {
      const field = WEIGHT_FIELDS[name];
      const value = (layer as Record<string, unknown>)[field];
      if (value === undefined) continue;
      const fieldPath = at(d.path, field);
      const mismatch = layer.type === 'dense' ? denseMismatch(d, drafts[index - 1]?.node, model.inputName) : undefined;
      const values = readWeight(value, fieldPath, shape, `layer '${d.node.name}' ${name}`, issues, mismatch);
      if (values) d.node.weights[name] = values;
    }
  });
}
