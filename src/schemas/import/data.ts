import { lossRule } from '../../compute/losses/index.js';
import type { GraphModel, LossSpec, Matrix, TensorData } from '../../compute/spec.js';
import { describeValue } from '../model.js';
import { BinaryTensorN, isBinary } from '../tensor.js';
import { at, Issues, isObject, type Path } from './issues.js';
import { readBinary, readNested, type Mismatch, type ReadTensor } from './values.js';

/**
 * The batch: x shaped [batch, ...model input shape] (float32, or int32 ids for an embedding) and y
 * as the loss needs it ([batch][units] targets, or [batch] class labels), nested or binary.
 */

const show = (shape: readonly (number | string)[]) => `[${shape.join(', ')}]`;

/** A tensor field: nested arrays, or a binary tensor of any rank (BinaryTensorN). */
function readField(value: unknown, path: Path, expected: readonly (number | null)[], mismatch: Mismatch, issues: Issues): ReadTensor | null {
  if (!isBinary(value)) return readNested(value, path, expected, mismatch, issues);
  const parsed = BinaryTensorN.safeParse(value);
  if (!parsed.success) {
    issues.addZod(path, parsed.error);
    return null;
  }
  return readBinary(parsed.data, path, issues);
}

/** x as the engine takes it; null after reporting why not. */
function readInputs(value: unknown, path: Path, model: GraphModel, issues: Issues): TensorData | null {
  const { shape: inputShape, dtype } = model.input;
  const modelShape = `model input shape is ${show(inputShape)}`;
  const wanted = `${dtype} [batch, ${inputShape.join(', ')}] with batch >= 1`;
  const mismatch: Mismatch = (where, axis, found, expected) =>
    inputShape.length === 1 ? `${where} has ${found} features but model.inputShape is ${show(inputShape)}` : `${where} has ${found} entries but the ${modelShape} (axis ${axis} of ${path} needs ${expected})`;
  const tensor = readField(value, path, [null, ...inputShape], mismatch, issues);
  if (!tensor) return null;
  const { shape } = tensor;
  if (isBinary(value) && (shape.length !== inputShape.length + 1 || shape.some((d, i) => i > 0 && d !== inputShape[i - 1]))) {
    issues.add(path, `${path} is ${tensor.dtype} ${show(shape)}; it must be ${wanted} (the ${modelShape})`);
    return null;
  }
  if (shape[0] < 1) {
    issues.add(path, `${path} has no examples; it must be ${wanted}`);
    return null;
  }
  if (dtype === 'float32') {
    if (tensor.dtype !== 'float32') {
      issues.add(path, `${path} is int32 but the model input is float32: send float32 values`);
      return null;
    }
    return { shape, values: tensor.values instanceof Float32Array ? tensor.values : Float32Array.from(tensor.values) };
  }
  // Integer ids for embeddings: each in [0, inputDim) of every embedding that reads them.
  const inputDim = Math.min(...model.nodes.filter((n) => n.type === 'embedding').map((n) => (n.type === 'embedding' ? n.config.inputDim : Infinity)));
  const bad = Array.prototype.findIndex.call(tensor.values, (v: number) => !Number.isInteger(v) || v < 0 || v >= inputDim);
  if (bad >= 0) {
    issues.add(path, `${path} value ${bad} (row-major) is ${tensor.values[bad]}; the model input holds token ids, integers in [0, ${inputDim - 1}] (the embedding's inputDim is ${inputDim})`);
    return null;
  }
  return { shape, values: Int32Array.from(tensor.values) };
}

/**
 * y for the loss: labels loss -> [batch, 1] integer labels in [0, units - 1]; else [batch, units]
 * ([batch] for one unit). The messages are today's for dense stacks.
 */
function readTargets(value: unknown, path: Path, batch: number | null, units: number, loss: LossSpec, issues: Issues): Matrix | null {
  const rule = lossRule(loss.type);
  const labels = rule.targets === 'labels';
  const before = issues.count;
  if (isBinary(value)) {
    const parsed = BinaryTensorN.safeParse(value);
    if (!parsed.success) return issues.addZod(path, parsed.error), null;
    const tensor = readBinary(parsed.data, path, issues);
    if (!tensor) return null;
    const { dtype, shape, values } = tensor;
    const described = `${path} is ${dtype} ${show(shape)}`;
    if (labels) {
      if (dtype !== 'int32' || shape.length !== 1) return issues.add(path, `${described}; ${rule.name} takes int32 [batch] class labels`), null;
      const bad = Array.prototype.findIndex.call(values, (label: number) => label < 0 || label >= units);
      if (bad >= 0) issues.add(at(path, bad), `${at(path, bad)} is ${values[bad]}; it must be an integer class label in [0, ${units - 1}] for ${rule.name}`);
    } else if (dtype !== 'float32' || (shape.length === 2 ? shape[1] !== units : shape.length !== 1 || units !== 1)) {
      issues.add(path, `${described}; ${rule.name} takes float32 [batch, ${units}] targets (the last layer's units)${units === 1 ? ' or [batch]' : ''}`);
    }
    if (issues.count > before) return null;
    if (batch !== null && shape[0] !== batch) return issues.add(path, `${path} has ${shape[0]} rows but data.x has ${batch}`), null;
    return { rows: shape[0], columns: shape[1] ?? 1, values: values instanceof Float32Array ? values : Float32Array.from(values) };
  }
  if (!Array.isArray(value)) {
    issues.add(path, `${path} must be [batch][units] numbers, [batch] labels or a binary tensor {"dtype","shape","data"}; got ${describeValue(value)}`);
    return null;
  }
  if (batch !== null && value.length !== batch) issues.add(path, `${path} has ${value.length} rows but data.x has ${batch}`);
  const columns = labels ? 1 : units;
  const matrix = new Float32Array(value.length * columns);
  value.forEach((target, b) => {
    if (issues.count > before) return;
    const where = at(path, b);
    const row = Array.isArray(target) ? target : [target];
    if (row.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
      issues.add(where, `${where} must be ${labels ? 'an integer class label' : `${units} finite numbers`}; got ${row.length === 1 ? describeValue(row[0]) : 'an array with a non-number'}`);
    } else if (labels) {
      const label = row[0] as number;
      if (row.length !== 1 || !Number.isInteger(label) || label < 0 || label >= units) issues.add(where, `${where} must be an integer class label in [0, ${units - 1}] for ${rule.name}`);
      else matrix[b] = label;
    } else if (Array.isArray(target) ? target.length !== units : units !== 1) {
      issues.add(where, `${where} must have ${units} entries (the last layer's units) for ${rule.name}`);
    } else matrix.set(row as number[], b * units);
  });
  return issues.count > before ? null : { rows: value.length, columns, values: matrix };
}

/** The request's data for a model with output [batch, units] under `loss` (null: the loss is unknown, so y is not checked). */
export function importData(value: unknown, path: Path, model: GraphModel, units: number, loss: LossSpec | null, issues: Issues): { x: TensorData; y: Matrix } | null {
  if (!isObject(value)) {
    issues.add(path, `${path} must be {"x": [batch, ...inputShape], "y": targets}; got ${describeValue(value)}`);
    return null;
  }
  const extra = Object.keys(value).filter((k) => k !== 'x' && k !== 'y');
  if (extra.length) issues.add(path, `${path}: Unrecognized key${extra.length > 1 ? 's' : ''}: ${extra.map((k) => `"${k}"`).join(', ')} (data takes x and y)`);
  for (const field of ['x', 'y'] as const) if (value[field] === undefined) issues.add(at(path, field), `${at(path, field)} is required`);
  if (value.x === undefined || value.y === undefined) return null;
  const x = readInputs(value.x, at(path, 'x'), model, issues);
  if (!loss) return null;
  const y = readTargets(value.y, at(path, 'y'), x ? x.shape[0] : null, units, loss, issues);
  return x && y ? { x, y } : null;
}
