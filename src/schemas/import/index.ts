/**
 * Importers: every wire format of a model (our JSON, a TF.js model.json with its weights, a Keras
 * to_json with its weights) made into the engine's GraphModel, and a whole request body into an
 * EngineRequest. Each throws one SpecError listing every problem with its field path.
 */
import type { EngineRequest, GraphModel, LossSpec } from '../../compute/spec.js';
import { describeValue } from '../model.js';
import { importData } from './data.js';
import { layerShapes, parameterNames } from './graph.js';
import { at, Issues, isObject, type Path } from './issues.js';
import { readLoss, type ModelLoss } from './loss.js';
import { importKerasModel, isKerasModel } from './keras.js';
import { importOurModel, isOurModel } from './ours.js';
import { importTfjsModel, isTfjsModel } from './tfjs.js';

export { parameterNames, parameterTensors } from './graph.js';
export { OurLayer, OurModel } from './ours.js';
export { KerasModel, ModelField, ModelRef, RequestBody, RequestData, TfjsModel } from './formats.js';

export interface ImportedModel {
  model: GraphModel;
  /** The loss of a compiled model (its training config), when it has one that can be used. */
  loss?: LossSpec;
  /** Why the model's own loss cannot be used (e.g. it was a function), said when the request names none. */
  lossProblem?: { path: Path; message: string };
  /** Every node's output shape (without the batch), by node name; the model input's too. */
  shapes: Map<string, number[]>;
}

const FORMATS = 'our JSON {"inputShape", "layers"}, a TF.js model.json {"modelTopology", "weightsManifest", "weightData"}, or a Keras to_json {"class_name", "config", "weights"}';

function importInto(value: unknown, path: Path, issues: Issues): (Omit<ImportedModel, 'loss' | 'lossProblem'> & { modelLoss?: ModelLoss }) | null {
  if (!isObject(value)) {
    issues.add(path, `${path || 'the model'} must be a model object: ${FORMATS}; got ${describeValue(value)}`);
    return null;
  }
  if (isOurModel(value)) return importOurModel(value, path, issues);
  if (isTfjsModel(value)) return importTfjsModel(value, path, null, issues);
  if (isKerasModel(value)) return importKerasModel(value, path, issues);
  if ('id' in value && Object.keys(value).length === 1) {
    issues.add(at(path, 'id'), `${at(path, 'id')}: a stored model is not accepted here; send the model itself`);
    return null;
  }
  issues.add(path, `${path || 'the model'} is not a model this service reads; it takes ${FORMATS} (found keys ${Object.keys(value).slice(0, 8).join(', ') || 'none'})`);
  return null;
}

/** A model in any supported format; throws SpecError naming each problem's field (under `path`). */
export function importModel(value: unknown, path: Path): ImportedModel {
  const issues = new Issues();
  const imported = importInto(value, path, issues);
  issues.throwIfAny();
  return withLoss(imported!);
}

/**
 * A TF.js model as tf.io.http uploads it (multipart: model.json and the weights file): the model.json
 * object and the bytes of its weight files, concatenated in manifest order. Paths name model.json's fields.
 */
export function tfjsArtifactsModel(modelJson: unknown, weightBytes: Uint8Array): ImportedModel {
  const issues = new Issues();
  if (!isObject(modelJson) || !isTfjsModel(modelJson)) issues.add('model.json', `model.json must be a TF.js model.json {"modelTopology", "weightsManifest", ...}; got ${describeValue(modelJson)}`);
  const imported = issues.count ? null : importTfjsModel(modelJson as Record<string, unknown>, 'model.json', weightBytes, issues);
  issues.throwIfAny();
  return withLoss(imported!);
}

function withLoss({ modelLoss, ...rest }: Omit<ImportedModel, 'loss' | 'lossProblem'> & { modelLoss?: ModelLoss }): ImportedModel {
  return { ...rest, ...(modelLoss && 'loss' in modelLoss ? { loss: modelLoss.loss } : {}), ...(modelLoss && 'problem' in modelLoss ? { lossProblem: modelLoss.problem } : {}) };
}

const REQUEST_FIELDS = ['model', 'loss', 'data', 'wrt'];

/** A model imported earlier (the models store's), with what its import said about its loss. */
export type StoredModel = Pick<ImportedModel, 'model' | 'loss' | 'lossProblem'>;

/** A stored model as importInto gives one: its shapes again (from its structure alone) and its loss. */
function fromStore(stored: StoredModel) {
  const { model, loss, lossProblem } = stored;
  const shapes = new Map<string, number[]>([[model.input.name, model.input.shape]]);
  for (const node of model.nodes) shapes.set(node.name, layerShapes(node, node.inputs.map((name) => shapes.get(name)!)).output);
  const modelLoss: ModelLoss = loss ? { loss } : lossProblem ? { problem: lossProblem } : undefined;
  return { model, shapes, modelLoss };
}

/**
 * A whole request body ({model, loss?, data, wrt?}) as the engine's request. The loss is the
 * request's, else the compiled model's; throws one SpecError with every problem found. `stored` is
 * the model that the body's {"model": {"id"}} names, already imported (the caller resolves the id).
 */
export function importRequest(body: unknown, stored?: StoredModel): EngineRequest {
  const issues = new Issues();
  if (!isObject(body)) {
    issues.add('', `the request body must be an object {"model", "loss", "data", "wrt"}; got ${describeValue(body)}`);
    issues.throwIfAny();
  }
  const request = body as Record<string, unknown>;
  const extra = Object.keys(request).filter((k) => !REQUEST_FIELDS.includes(k));
  if (extra.length) issues.add('', `Unrecognized key${extra.length > 1 ? 's' : ''}: ${extra.map((k) => `"${k}"`).join(', ')}; a request has ${REQUEST_FIELDS.join(', ')}`);
  if (request.model === undefined) issues.add('model', 'model is required');
  const imported = stored ? fromStore(stored) : request.model === undefined ? null : importInto(request.model, 'model', issues);
  // Whether a model without `loss` carries one is known only once it imported.
  const loss = imported || request.loss !== undefined ? resolveLoss(request.loss, imported?.modelLoss, issues) : null;
  const wrt = readWrt(request.wrt, imported?.model ?? null, issues);
  if (imported) {
    const output = imported.shapes.get(imported.model.output)!;
    const data = importData(request.data, 'data', imported.model, output[output.length - 1], loss, issues);
    issues.throwIfAny();
    return { model: imported.model, loss: loss!, data: data!, ...(wrt ? { wrt } : {}) };
  }
  if (request.data === undefined) issues.add('data', 'data is required');
  issues.throwIfAny();
  throw new Error('unreachable: a request without a model has an issue');
}

function resolveLoss(value: unknown, fromModel: ModelLoss, issues: Issues): LossSpec | null {
  if (value !== undefined) return readLoss(value, 'loss', issues);
  if (fromModel && 'loss' in fromModel) return fromModel.loss;
  if (fromModel && 'problem' in fromModel) issues.add(fromModel.problem.path, fromModel.problem.message);
  else issues.add('loss', 'loss is required: the model carries no training config with a loss (compile it before saving, or name the loss here)');
  return null;
}

function readWrt(value: unknown, model: GraphModel | null, issues: Issues): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || value.some((name) => typeof name !== 'string')) {
    issues.add('wrt', `wrt must be a non-empty list of parameter names, e.g. ["dense_2/kernel"]; got ${describeValue(value)}`);
    return undefined;
  }
  if (!model) return undefined;
  const known = parameterNames(model);
  value.forEach((name: string, i) => {
    if (!known.includes(name)) issues.add(at('wrt', i), `wrt[${i}] '${name}' is not a parameter tensor; the model has ${known.join(', ')}`);
    else if (value.indexOf(name) !== i) issues.add(at('wrt', i), `wrt[${i}] '${name}' is listed twice`);
  });
  return value as string[];
}
