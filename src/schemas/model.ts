import { z } from 'zod';
import { ACTIVATION_NAMES } from '../compute/activations/index.js';
import { normalizeLoss, specError, type DenseLayerSpec, type DenseRequest } from '../compute/index.js';
import { LOSS_NAMES, lossRule } from '../compute/losses/index.js';
import { allParameters, layerInputs, layerName } from '../compute/parameters.js';
import { BinaryTensor, binaryToMatrix, decodeTensor, isBinary, nestedToMatrix, type DecodedTensor, type Matrix } from './tensor.js';

/**
 * The request the engine and the API take: a sequential model of dense layers (Keras conventions),
 * a loss, a data batch and optionally the parameter tensors to differentiate with respect to.
 * These schemas are the one source of validation, TypeScript types and the OpenAPI document.
 */

/** A bad value as an error message shows it: a string quoted (cut at 100 characters), a scalar as is, else its kind. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}...` : value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a value of type ${typeof value}`;
}

/**
 * A name from `names`, or an object whose `type` is one: an unknown name is answered with the name
 * and the accepted ones (and a field inside the object form is reported at its own path).
 */
function nameOrObject<Names extends readonly [string, ...string[]], Shape extends z.ZodRawShape>(what: string, names: Names, shape: Shape) {
  const unknown = (value: unknown) => `${describeValue(value)} is not a known ${what}; accepted: ${names.join(', ')}`;
  const name = z.enum(names, { error: (issue) => unknown(issue.input) });
  return z.union([name, z.object({ type: name, ...shape }).strict()], {
    error: (issue) => (typeof issue.input === 'string' ? unknown(issue.input) : `expected a ${what} name (${names.join(', ')}) or {"type": name, ...}`),
  });
}

export const ActivationSpec = nameOrObject('activation', ACTIVATION_NAMES, {
  alpha: z.number().optional().describe('leakyRelu slope (default 0.2) or elu alpha (default 1)'),
}).describe('An activation name (camelCase, or the Keras snake_case alias), or {type, alpha} for leakyRelu and elu');

export const DenseLayer = z
  .object({
    type: z.literal('dense', { error: (issue) => `${describeValue(issue.input)} is not a supported layer type; accepted: dense` }),
    units: z.number().int().min(1).max(1_000_000),
    activation: ActivationSpec.default('linear'),
    useBias: z.boolean().default(true),
    kernel: z
      .array(z.array(z.number()))
      .optional()
      .describe('[inputs][units]: y = x · kernel + bias. Omitted: Glorot-uniform from the model seed'),
    bias: z.array(z.number()).optional().describe('[units]. Omitted: zeros'),
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only, at most 64 characters')
      .optional()
      .describe('Defaults to dense_1, dense_2, ...'),
    kernelRegularizer: z
      .object({ l2: z.number().min(0).describe('adds l2 · Σ kernel² to the loss (Keras: no 1/2, biases not regularized)') })
      .strict()
      .optional(),
  })
  .strict();

export const Model = z
  .object({
    inputShape: z.tuple([z.number().int().min(1).max(1_000_000)]).describe('[features]'),
    layers: z.array(DenseLayer).min(1).max(64),
    seed: z.number().int().min(0).max(2 ** 31).default(0).describe('Seed for weights the request leaves out'),
  })
  .strict();

export const LossSpec = nameOrObject('loss', LOSS_NAMES, {
  fromLogits: z.boolean().optional().describe('Cross-entropies only: the output is logits (default false, as Keras)'),
  delta: z.number().positive().optional().describe('huber only (default 1)'),
});

const BINARY = 'a binary tensor {"dtype","shape","data"}';
export const Data = z
  .object({
    x: z
      .union([z.array(z.array(z.number())).min(1), BinaryTensor], { error: `data.x must be [batch][features] numbers or ${BINARY}` })
      .describe('[batch][features], or a binary float32 tensor of shape [batch, features]'),
    y: z
      .union([z.array(z.union([z.number(), z.array(z.number())])), BinaryTensor], { error: `data.y must be [batch][units] numbers, [batch] labels or ${BINARY}` })
      .describe(
        '[batch][units] targets, or [batch] integer labels for sparseCategoricalCrossentropy; or a binary tensor: float32 [batch, units] (or [batch] for one unit), int32 [batch] for labels',
      ),
  })
  .strict();

/** The fields every request shares (the curvature request extends them). */
export const RequestFields = z
  .object({
    model: Model,
    loss: LossSpec,
    data: Data,
    wrt: z
      .array(z.string())
      .min(1)
      .optional()
      .describe('Parameter tensors to keep, e.g. ["dense_2/kernel"], in this order; default: all'),
  })
  .strict();

export const HessianRequest = RequestFields.check((payload) => {
  // The cross-field checks need well-formed fields: they wait until every field check has passed.
  if (payload.issues.length) return;
  checkConsistency(payload.value, (path, message) => payload.issues.push({ code: 'custom', path, message, input: payload.value }));
}).meta({ id: 'HessianRequest' });

export type Model = z.infer<typeof Model>;
export type DenseLayer = z.infer<typeof DenseLayer>;
export type ActivationSpec = z.infer<typeof ActivationSpec>;
export type LossSpec = z.infer<typeof LossSpec>;
/** A request as its fields validate, before it is made compact. */
export type RequestFields = z.infer<typeof RequestFields>;
/**
 * A validated request as the engine's dense path takes it (compute's DenseRequest): every tensor a
 * typed array with its shape. Integer labels are a one-column Matrix of the label values.
 */
export type HessianRequest = DenseRequest;
export type CompactLayer = DenseLayerSpec;
export type HessianRequestInput = z.input<typeof HessianRequest>;
/** What the HessianRequest schema validates to, before compactRequest (the routes call it at once). */
export type ValidatedRequest = z.output<typeof HessianRequest>;

/** A request whose fields and consistency checks passed, made compact (see HessianRequest). */
export function compactRequest(request: RequestFields): HessianRequest {
  const { model, data } = request;
  const targets = data.y;
  return {
    ...request,
    model: {
      ...model,
      layers: model.layers.map(({ kernel, bias, ...layer }) => ({
        ...layer,
        ...(kernel ? { kernel: nestedToMatrix(kernel, layer.units) } : {}),
        ...(bias ? { bias: Float32Array.from(bias) } : {}),
      })),
    },
    data: {
      x: isBinary(data.x) ? binaryToMatrix(data.x) : nestedToMatrix(data.x),
      y: isBinary(targets) ? binaryToMatrix(targets) : nestedToMatrix(targets.map((t) => (Array.isArray(t) ? t : [t]))),
    },
  };
}

/** Validates a dense request body and makes it compact; throws SpecError naming each bad field. */
export function parseRequest(body: unknown): HessianRequest {
  const parsed = HessianRequest.safeParse(body);
  if (parsed.success) return compactRequest(parsed.data);
  throw specError(parsed.error);
}

export type Report = (path: (string | number)[], message: string) => void;

/** Checks that need more than one field: shapes that must chain, targets that must fit the loss. */
export function checkConsistency(request: RequestFields, issue: Report): void {
  const { model, data } = request;
  const inputs = layerInputs(model);
  model.layers.forEach((layer, l) => {
    const at = (field: string) => `model.layers[${l}].${field}`;
    const source = l === 0 ? `the input has ${inputs[0]} features` : `the previous layer has ${inputs[l]} units`;
    if (layer.kernel) {
      if (layer.kernel.length !== inputs[l]) {
        issue(['model', 'layers', l, 'kernel'], `${at('kernel')} has ${layer.kernel.length} rows but ${source}`);
      } else {
        const bad = layer.kernel.findIndex((row) => row.length !== layer.units);
        if (bad >= 0) {
          issue(['model', 'layers', l, 'kernel', bad], `${at(`kernel[${bad}]`)} has ${layer.kernel[bad].length} entries but the layer has ${layer.units} units`);
        }
      }
    }
    if (layer.bias && !layer.useBias) issue(['model', 'layers', l, 'bias'], `${at('bias')} is given but useBias is false`);
    if (layer.bias && layer.bias.length !== layer.units) {
      issue(['model', 'layers', l, 'bias'], `${at('bias')} has ${layer.bias.length} entries but the layer has ${layer.units} units`);
    }
  });
  const names = model.layers.map((_, l) => layerName(model, l));
  names.forEach((name, l) => {
    if (names.indexOf(name) !== l) issue(['model', 'layers', l, 'name'], `model.layers[${l}].name '${name}' is used by an earlier layer`);
  });

  const features = inputs[0];
  let unreadable = false;
  for (const field of ['x', 'y'] as const) {
    const tensor = data[field];
    const problem = isBinary(tensor) ? decodeTensor(tensor) : null;
    if (typeof problem === 'string') {
      unreadable = true;
      issue(['data', field, 'data'], `data.${field}.${problem}`);
    }
  }
  if (unreadable) return; // the shape checks below read the values
  if (isBinary(data.x)) {
    const { dtype, shape } = data.x;
    if (dtype !== 'float32' || shape.length !== 2 || shape[0] < 1 || shape[1] !== features) {
      issue(['data', 'x'], `data.x is ${dtype} [${shape.join(', ')}]; it must be float32 [batch, ${features}] with batch >= 1 (model.inputShape is [${features}])`);
    }
  } else {
    const badRow = data.x.findIndex((row) => row.length !== features);
    if (badRow >= 0) issue(['data', 'x', badRow], `data.x[${badRow}] has ${data.x[badRow].length} features but model.inputShape is [${features}]`);
  }
  const batch = isBinary(data.x) ? data.x.shape[0] : data.x.length;
  const targetRows = isBinary(data.y) ? data.y.shape[0] : data.y.length;
  if (targetRows !== batch) issue(['data', 'y'], `data.y has ${targetRows} rows but data.x has ${batch}`);
  checkTargets(request, issue);

  if (request.wrt) {
    const known = new Set(allParameters(model).map((t) => t.name));
    request.wrt.forEach((name, i) => {
      if (!known.has(name)) issue(['wrt', i], `wrt[${i}] '${name}' is not a parameter tensor; the model has ${[...known].join(', ')}`);
      else if (request.wrt!.indexOf(name) !== i) issue(['wrt', i], `wrt[${i}] '${name}' is listed twice`);
    });
  }
}

function checkTargets(request: RequestFields, issue: Report): void {
  const loss = normalizeLoss(request.loss);
  const rule = lossRule(loss.type);
  const units = request.model.layers[request.model.layers.length - 1].units;
  if ('fromLogits' in loss && loss.fromLogits !== undefined && !rule.takesLogits) {
    issue(['loss', 'fromLogits'], `loss.fromLogits does not apply to ${loss.type}`);
  }
  if ('delta' in loss && loss.delta !== undefined && rule.name !== 'huber') issue(['loss', 'delta'], `loss.delta applies only to huber`);
  if (isBinary(request.data.y)) return checkBinaryTargets(request.data.y, rule.targets === 'labels', units, rule.name, issue);
  request.data.y.forEach((target, b) => {
    const at = `data.y[${b}]`;
    if (rule.targets === 'labels') {
      const label = Array.isArray(target) && target.length === 1 ? target[0] : target;
      if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label >= units) {
        issue(['data', 'y', b], `${at} must be an integer class label in [0, ${units - 1}] for ${rule.name}`);
      }
    } else if (Array.isArray(target) ? target.length !== units : units !== 1) {
      issue(['data', 'y', b], `${at} must have ${units} entries (the last layer's units) for ${rule.name}`);
    }
  });
}

/** Binary targets: int32 [batch] labels in [0, units-1], or float32 [batch, units] ([batch] for one unit). */
function checkBinaryTargets(y: BinaryTensor, labels: boolean, units: number, loss: string, issue: Report): void {
  const { dtype, shape } = y;
  const { values } = decodeTensor(y) as DecodedTensor;
  const described = `data.y is ${dtype} [${shape.join(', ')}]`;
  if (labels) {
    if (dtype !== 'int32' || shape.length !== 1) return issue(['data', 'y'], `${described}; ${loss} takes int32 [batch] class labels`);
    const bad = values.findIndex((label) => label < 0 || label >= units);
    if (bad >= 0) issue(['data', 'y', bad], `data.y[${bad}] is ${values[bad]}; it must be an integer class label in [0, ${units - 1}] for ${loss}`);
  } else if (dtype !== 'float32' || (shape.length === 2 ? shape[1] !== units : units !== 1)) {
    issue(['data', 'y'], `${described}; ${loss} takes float32 [batch, ${units}] targets (the last layer's units)${units === 1 ? ' or [batch]' : ''}`);
  }
}
