import { describeValue } from '../model.js';
import { BinaryTensorN, decodeTensor, isBinary, type BinaryTensor } from '../tensor.js';
import { at, Issues, type Path } from './issues.js';

/**
 * Tensors as requests carry them, nested JSON arrays or binary {"dtype","shape","data"}, read into
 * flat row-major values with their shape. Each reader reports the first problem of a tensor (not one
 * per bad element: a 20k-entry kernel gets one message).
 */

export interface ReadTensor {
  shape: number[];
  /** Plain numbers from nested arrays, typed from a binary tensor. */
  values: ArrayLike<number>;
  dtype: 'float32' | 'int32';
}

/**
 * Says why an array has the wrong length: `path` is the array's field, `axis` its depth, `found` its
 * length and `expected` what the shape needs. Formats word it in their own terms.
 */
export type Mismatch = (path: Path, axis: number, found: number, expected: number) => string;

export const genericMismatch =
  (expectedShape: readonly (number | null)[], what: string): Mismatch =>
  (path, axis, found, expected) =>
    `${path} has ${found} entries but ${what} needs ${expected} on axis ${axis} (shape [${expectedShape.map((d) => d ?? 'any').join(', ')}])`;

/**
 * Nested arrays of finite numbers shaped `expected` (null: any length, learned from the first array
 * at that depth); null after reporting the first problem.
 */
export function readNested(value: unknown, path: Path, expected: readonly (number | null)[], mismatch: Mismatch, issues: Issues): ReadTensor | null {
  const shape = [...expected];
  const values: number[] = [];
  // Indices of the element being read; its path is only formatted for a message.
  const indices: number[] = [];
  const where = () => indices.reduce<string>((p, i) => `${p}[${i}]`, path);
  const walk = (v: unknown, axis: number): boolean => {
    if (axis === shape.length) {
      if (typeof v === 'number' && Number.isFinite(v)) {
        values.push(v);
        return true;
      }
      issues.add(where(), typeof v === 'number' ? `${where()} is ${v}; values must be finite` : `${where()} is ${describeValue(v)}; expected a number`);
      return false;
    }
    if (!Array.isArray(v)) {
      issues.add(where(), `${where()} is ${describeValue(v)}; expected an array (a tensor of ${shape.length} axes)`);
      return false;
    }
    const length = shape[axis];
    if (length === null) shape[axis] = v.length;
    else if (v.length !== length) {
      issues.add(where(), mismatch(where(), axis, v.length, length));
      return false;
    }
    for (let i = 0; i < v.length; i++) {
      indices.push(i);
      if (!walk(v[i], axis + 1)) return false;
      indices.pop();
    }
    return true;
  };
  return walk(value, 0) ? { shape: shape as number[], values, dtype: 'float32' } : null;
}

/** The depth of nested arrays, following first elements ([[1, 2]] has 2): the rank a client meant. */
export function nestedRank(value: unknown): number {
  let rank = 0;
  for (let v = value; Array.isArray(v); v = v[0]) rank++;
  return rank;
}

/** A binary tensor's values, or null after reporting why they cannot be read. */
export function readBinary(value: BinaryTensor, path: Path, issues: Issues): ReadTensor | null {
  const decoded = decodeTensor(value);
  if (typeof decoded === 'string') {
    issues.add(at(path, 'data'), `${at(path, 'data')}${decoded.slice('data'.length)}`);
    return null;
  }
  return decoded;
}

const show = (shape: readonly (number | null)[]) => `[${shape.map((d) => d ?? 'batch').join(', ')}]`;

/**
 * A weight given as nested arrays or a float32 binary tensor, shaped `expected`, as float32 values;
 * null after reporting why not. `what` names the weight for the messages ("layer 'conv2d_1' kernel").
 */
export function readWeight(value: unknown, path: Path, expected: readonly number[], what: string, issues: Issues, mismatch?: Mismatch): Float32Array | null {
  if (isBinary(value)) {
    const parsed = BinaryTensorN.safeParse(value);
    if (!parsed.success) {
      issues.addZod(path, parsed.error);
      return null;
    }
    const tensor = readBinary(parsed.data, path, issues);
    if (!tensor) return null;
    if (tensor.dtype !== 'float32' || tensor.shape.length !== expected.length || tensor.shape.some((d, i) => d !== expected[i])) {
      issues.add(path, `${path} is ${tensor.dtype} ${show(tensor.shape)} but ${what} is float32 ${show(expected)}`);
      return null;
    }
    return tensor.values as Float32Array;
  }
  const tensor = readNested(value, path, expected, mismatch ?? genericMismatch(expected, what), issues);
  return tensor && Float32Array.from(tensor.values);
}
