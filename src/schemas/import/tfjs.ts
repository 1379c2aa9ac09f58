import { layerWeights, type WeightName } from '../../compute/spec.js';
import { describeValue } from '../model.js';
import { buildGraph, type GraphDraft } from './graph.js';
import { at, Issues, isObject, type Path } from './issues.js';
import { modelLoss } from './loss.js';
import { readTopology } from './topology.js';

/**
 * A TF.js model.json (tf.io's "layers-model" format, which tensorflowjs_converter also writes for a
 * Keras model): its modelTopology and weightsManifest, with the weight files' bytes. Weights are
 * matched to layers by manifest name ("<layer name>/<weight name>"); the optimizer's weights
 * (group "optimizer", written with includeOptimizer) are not parameters and are skipped.
 */

/** One weight of the manifest, with where its bytes are. */
interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  group?: string;
  quantization?: { dtype?: string };
  path: Path;
  offset: number;
  bytes: number;
}

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };
const QUANTIZED_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

/** Whether a model object is a TF.js model.json (rather than our JSON or a Keras to_json). */
export const isTfjsModel = (model: Record<string, unknown>) => 'modelTopology' in model;

/** The manifest's weights in byte order: model.json's weightsManifest groups, or a ModelArtifacts' weightSpecs. */
function manifest(modelJson: Record<string, unknown>, path: Path, issues: Issues): ManifestWeight[] | null {
  const specs: { spec: unknown; path: Path }[] = [];
  if (Array.isArray(modelJson.weightsManifest)) {
    modelJson.weightsManifest.forEach((group: unknown, g: number) => {
      const groupPath = at(path, 'weightsManifest', g);
      if (!isObject(group) || !Array.isArray(group.weights)) issues.add(groupPath, `${groupPath} must be {"paths": [...], "weights": [...]}`);
      else group.weights.forEach((spec: unknown, w: number) => specs.push({ spec, path: at(groupPath, 'weights', w) }));
    });
  } else if (Array.isArray(modelJson.weightSpecs)) {
    modelJson.weightSpecs.forEach((spec: unknown, w: number) => specs.push({ spec, path: at(path, 'weightSpecs', w) }));
  } else {
    issues.add(at(path, 'weightsManifest'), `${at(path, 'weightsManifest')} is required: the list of weight groups of model.json`);
    return null;
  }
  let offset = 0;
  const weights: ManifestWeight[] = [];
  for (const { spec, path: specPath } of specs) {
    const shapeOk = isObject(spec) && Array.isArray(spec.shape) && spec.shape.every((d) => Number.isInteger(d) && d >= 0);
    if (!isObject(spec) || typeof spec.name !== 'string' || !shapeOk || typeof spec.dtype !== 'string') {
      issues.add(specPath, `${specPath} must be a weight {"name", "shape", "dtype"}`);
      return null;
    }
    const quantization = isObject(spec.quantization) ? spec.quantization : undefined;
    const elementBytes = quantization ? QUANTIZED_BYTES[quantization.dtype as string] : BYTES_PER_ELEMENT[spec.dtype];
    if (elementBytes === undefined) {
      issues.add(specPath, `${specPath}: weight '${spec.name}' is ${describeValue(quantization ? quantization.dtype : spec.dtype)}, whose size this service cannot read; weights must be float32`);
      return null;
    }
    const shape = spec.shape as number[];
    const bytes = shape.reduce((a, b) => a * b, 1) * elementBytes;
    weights.push({ name: spec.name, shape, dtype: spec.dtype, group: spec.group as string | undefined, quantization, path: specPath, offset, bytes });
    offset += bytes;
  }
  return weights;
}

/** The weight bytes of a model.json sent as JSON: base64 in weightData. */
function weightDataBytes(value: unknown, path: Path, issues: Issues): Uint8Array | null {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    issues.add(path, `${path} must be base64 of the weight files' bytes, concatenated in manifest order; got ${typeof value === 'string' ? 'a string that is not base64' : describeValue(value)}`);
    return null;
  }
  return Buffer.from(value, 'base64');
}

/**
 * A TF.js model.json with its weight bytes as the engine's model (with the loss of its trainingConfig);
 * `bytes` null means they are in modelJson.weightData (base64).
 */
export function importTfjsModel(modelJson: Record<string, unknown>, path: Path, bytes: Uint8Array | null, issues: Issues) {
  const before = issues.count;
  if (modelJson.format !== undefined && modelJson.format !== 'layers-model') {
    issues.add(
      at(path, 'format'),
      `${at(path, 'format')} is ${describeValue(modelJson.format)}: a graph model has no layers to differentiate; save the model with tf.LayersModel.save, or convert with --output_format tfjs_layers_model`,
    );
    return null;
  }
  // tensorflowjs_converter wraps a Keras model's topology: {keras_version, backend, model_config, training_config}.
  const topology = modelJson.modelTopology;
  const wrapped = isObject(topology) && isObject(topology.model_config);
  const topologyPath = at(path, 'modelTopology');
  const draft = readTopology(wrapped ? topology.model_config : topology, wrapped ? at(topologyPath, 'model_config') : topologyPath, issues);
  const weights = manifest(modelJson, path, issues);
  const data = bytes ?? weightDataBytes(modelJson.weightData, at(path, 'weightData'), issues);
  if (!draft || !weights || !data || issues.count > before) return null;
  const needed = weights.reduce((n, w) => n + w.bytes, 0);
  if (data.length !== needed) {
    const where = bytes ? 'the weight file' : at(path, 'weightData');
    issues.add(bytes ? path : at(path, 'weightData'), `${where} holds ${data.length} bytes but the manifest's ${weights.length} weights take ${needed}`);
    return null;
  }
  const byName = new Map(weights.filter((w) => w.group !== 'optimizer').map((w) => [w.name.replace(/:0$/, ''), w]));
  const used = new Set<string>();
  const built = buildGraph(draft as GraphDraft, issues, (d, expected) => {
    for (const { name } of layerWeights(d.node)) {
      const key = `${d.node.name}/${name}`;
      const weight = byName.get(key);
      if (!weight) {
        issues.add(at(path, 'weightsManifest'), `${at(path, 'weightsManifest')} has no weight '${key}' (layer '${d.node.name}' has ${layerWeights(d.node).map((w) => w.name).join(', ')})`);
        continue;
      }
      used.add(key);
      const shape = expected[name as WeightName]!;
      if (weight.dtype !== 'float32' || weight.quantization) {
        issues.add(weight.path, `${weight.path}: weight '${key}' is ${weight.quantization ? `quantized (${weight.quantization.dtype})` : weight.dtype}; weights must be float32 (save the model without quantization)`);
      } else if (weight.shape.length !== shape.length || weight.shape.some((s, i) => s !== shape[i])) {
        issues.add(weight.path, `${weight.path}: weight '${key}' is [${weight.shape.join(', ')}] but layer '${d.node.name}' needs [${shape.join(', ')}]`);
      } else {
        const view = new DataView(data.buffer, data.byteOffset + weight.offset, weight.bytes);
        const values = new Float32Array(weight.bytes / 4);
        for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);
        d.node.weights[name] = values;
      }
    }
  });
  for (const [name, weight] of byName) {
    if (built && !used.has(name)) issues.add(weight.path, `${weight.path}: weight '${name}' belongs to no layer of the model`);
  }
  if (!built || issues.count > before) return null;
  const [trainingConfig, configPath] = isObject(modelJson.trainingConfig)
    ? [modelJson.trainingConfig, at(path, 'trainingConfig')]
    : wrapped && isObject((topology as Record<string, unknown>).training_config)
      ? [(topology as Record<string, Record<string, unknown>>).training_config, at(topologyPath, 'training_config')]
      : [undefined, path];
  return { ...built, modelLoss: modelLoss(trainingConfig?.loss, at(configPath, 'loss')) };
}
