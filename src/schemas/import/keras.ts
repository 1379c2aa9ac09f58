import { layerWeights, type WeightName } from '../../compute/spec.js';
import { describeValue } from '../model.js';
import { buildGraph, type NodeDraft } from './graph.js';
import { at, Issues, isObject, type Path } from './issues.js';
import { modelLoss, type ModelLoss } from './loss.js';
import { readTopology } from './topology.js';
import { readWeight } from './values.js';

/**
 * A Keras model as Python has it: json.loads(model.to_json()) (Keras 3, or Keras 2's format) with
 * `weights`, model.get_weights() as nested lists or binary tensors: every weight, non-trainable ones
 * included, layer by layer in the model's layer order (BatchNormalization: gamma, beta, moving_mean,
 * moving_variance). A TF.js topology (model.toJSON(null, false)) with model.getWeights() is read the
 * same way, except that TF.js lists all trainable weights first and the non-trainable ones after.
 */

/** Whether a model object is a Keras-style topology. */
export const isKerasModel = (model: Record<string, unknown>) => 'class_name' in model && 'config' in model;

const KERAS_KEYS = ['module', 'class_name', 'config', 'registered_name', 'build_config', 'compile_config', 'keras_version', 'backend', 'weights'];

/** The loss of Keras 3's compile_config (one output, loss weight 1). */
function compiledLoss(compileConfig: unknown, path: Path): ModelLoss {
  if (!isObject(compileConfig)) return undefined;
  const weights = compileConfig.loss_weights;
  const unit = weights === null || weights === undefined || weights === 1 || (Array.isArray(weights) && weights.length === 1 && weights[0] === 1);
  if (!unit) {
    const where = at(path, 'loss_weights');
    return { problem: { path: where, message: `${where}: loss weights ${describeValue(JSON.stringify(weights))} are not supported; send \`loss\` with the request` } };
  }
  return modelLoss(compileConfig.loss, at(path, 'loss'));
}

export function importKerasModel(value: Record<string, unknown>, path: Path, issues: Issues) {
  const before = issues.count;
  const extra = Object.keys(value).filter((k) => !KERAS_KEYS.includes(k));
  if (extra.length) issues.add(path, `${path}: Unrecognized key${extra.length > 1 ? 's' : ''} ${extra.map((k) => `"${k}"`).join(', ')} in a Keras model; it has ${KERAS_KEYS.join(', ')}`);
  const draft = readTopology(value, path, issues);
  if (!draft || issues.count > before) return null;

  // The i-th array of `weights` for each weight of each node, in get_weights() order.
  const slots = new Map<NodeDraft, Partial<Record<WeightName, number>>>();
  const weights = value.weights;
  const weightsPath = at(path, 'weights');
  if (weights !== undefined) {
    const tfjsOrder = typeof value.keras_version === 'string' && value.keras_version.startsWith('tfjs-layers');
    const order = draft.nodes.flatMap((d) => layerWeights(d.node).map((w) => ({ d, ...w })));
    const listed = tfjsOrder ? [...order.filter((w) => w.trainable), ...order.filter((w) => !w.trainable)] : order;
    if (!Array.isArray(weights) || weights.length !== listed.length) {
      issues.add(
        weightsPath,
        `${weightsPath} has ${Array.isArray(weights) ? `${weights.length} arrays` : describeValue(weights)} but the model has ${listed.length} weights (model.get_weights()${tfjsOrder ? ', TF.js order: trainable first' : ''}): ${listed.map((w) => `${w.d.node.name}/${w.name}`).join(', ')}`,
      );
      return null;
    }
    listed.forEach(({ d, name }, i) => slots.set(d, { ...slots.get(d), [name]: i }));
  }
  const built = buildGraph(draft, issues, (d, expected) => {
    for (const [name, index] of Object.entries(slots.get(d) ?? {}) as [WeightName, number][]) {
      const values = readWeight((weights as unknown[])[index], at(weightsPath, index), expected[name]!, `layer '${d.node.name}' ${name}`, issues);
      if (values) d.node.weights[name] = values;
    }
  });
  if (!built || issues.count > before) return null;
  return { ...built, modelLoss: compiledLoss(value.compile_config, at(path, 'compile_config')) };
}
