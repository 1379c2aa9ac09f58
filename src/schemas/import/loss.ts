import { LOSS_NAMES, lossRule } from '../../compute/losses/index.js';
import type { LossSpec } from '../../compute/spec.js';
import { describeValue, LossSpec as LossField } from '../model.js';
import { at, Issues, isObject, type Path } from './issues.js';

/**
 * Losses: the request's `loss` (a name or {type, fromLogits, delta}), or the loss a compiled model
 * carries in its training config (TF.js trainingConfig.loss, Keras 3 compile_config.loss) when the
 * request names none.
 */

/** What a model says about its loss: one to use, a reason it cannot be used, or nothing. */
export type ModelLoss = { loss: LossSpec } | { problem: { path: Path; message: string } } | undefined;

const canonical = (spec: { type: string; fromLogits?: boolean; delta?: number }): LossSpec => ({ ...spec, type: lossRule(spec.type).name });

/** The request's own `loss`, validated; null after reporting why not. */
export function readLoss(value: unknown, path: Path, issues: Issues): LossSpec | null {
  const parsed = LossField.safeParse(value);
  if (!parsed.success) {
    issues.addZod(path, parsed.error);
    return null;
  }
  const loss = canonical(typeof parsed.data === 'string' ? { type: parsed.data } : parsed.data);
  const rule = lossRule(loss.type);
  const before = issues.count;
  if (loss.fromLogits !== undefined && !rule.takesLogits) issues.add(at(path, 'fromLogits'), `${at(path, 'fromLogits')} does not apply to ${loss.type}`);
  if (loss.delta !== undefined && rule.name !== 'huber') issues.add(at(path, 'delta'), `${at(path, 'delta')} applies only to huber`);
  return issues.count > before ? null : loss;
}

const ASK = `send \`loss\` with the request (one of ${LOSS_NAMES.join(', ')})`;
const FUNCTION = `the model was compiled with a loss function, which a saved model cannot carry; ${ASK}`;
/** Keras's reductions that average over the batch, as this service's losses do. */
const MEAN_REDUCTIONS = [undefined, null, 'auto', 'sum_over_batch_size'];

/**
 * The loss of a compiled model from its training config: a TF.js or Keras name ("mean_squared_error",
 * "mse", "categoricalCrossentropy"), Keras's serialized loss object, or a one-output list or dict.
 */
export function modelLoss(value: unknown, path: Path): ModelLoss {
  if (value === undefined || value === null) return undefined;
  const problem = (message: string, where = path): ModelLoss => ({ problem: { path: where, message: `${where}: ${message}` } });
  if (Array.isArray(value) || (isObject(value) && !('class_name' in value) && Object.keys(value).length > 0)) {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
    if (entries.length !== 1) return problem(`the model has ${entries.length} losses (one per output); only one-output models are supported`);
    return modelLoss(entries[0][1], at(path, entries[0][0]));
  }
  if (typeof value === 'string') {
    if (LOSS_NAMES.includes(value)) return { loss: canonical({ type: value }) };
    return problem(`the model was compiled with loss ${describeValue(value)}, which is not supported; ${ASK}`);
  }
  // TF.js writes {} for a function; Keras a {"class_name": "function", "config": "<its name>"} or a custom object.
  if (!isObject(value) || !('class_name' in value)) return problem(FUNCTION);
  const { class_name: className, config } = value;
  if (className === 'function') return typeof config === 'string' ? modelLoss(config, at(path, 'config')) : problem(FUNCTION);
  const type = typeof className === 'string' ? className.charAt(0).toLowerCase() + className.slice(1) : '';
  const options = isObject(config) ? config : {};
  if (!LOSS_NAMES.includes(type) || ('module' in value && value.module !== 'keras.losses' && value.module !== undefined)) {
    return problem(`the model was compiled with loss ${describeValue(className)}, which is not supported (or is a custom class); ${ASK}`, at(path, 'class_name'));
  }
  const configPath = at(path, 'config');
  if (!MEAN_REDUCTIONS.includes(options.reduction as string)) {
    return problem(`reduction ${describeValue(options.reduction)} is not supported: the losses here are the mean over the batch ("sum_over_batch_size")`, at(configPath, 'reduction'));
  }
  if (options.label_smoothing !== undefined && options.label_smoothing !== 0) {
    return problem(`label_smoothing ${describeValue(options.label_smoothing)} is not supported (only 0)`, at(configPath, 'label_smoothing'));
  }
  const rule = lossRule(type);
  return {
    loss: canonical({
      type,
      ...(rule.takesLogits && typeof options.from_logits === 'boolean' ? { fromLogits: options.from_logits } : {}),
      ...(rule.name === 'huber' && typeof options.delta === 'number' ? { delta: options.delta } : {}),
    }),
  };
}
