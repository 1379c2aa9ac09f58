import { z } from 'zod';

/**
 * Tensors in a request: nested JSON arrays, or binary (`{"dtype","shape","data"}` with the values as
 * base64 of little-endian bytes, row-major), which is some 3x smaller and parses without building
 * arrays. After validation every tensor is kept compact, as a typed array with its shape.
 */

/** A 2-D float32 tensor, row-major. */
export interface Matrix {
  rows: number;
  columns: number;
  values: Float32Array;
}

export const BinaryTensor = z
  .object({
    dtype: z.enum(['float32', 'int32']).describe('float32, or int32 for integer class labels'),
    shape: z.array(z.number().int().min(0).max(2 ** 31)).min(1).max(2).describe('[rows, columns], or [rows]'),
    data: z.string().describe('base64 of the values as little-endian bytes, row-major'),
  })
  .strict()
  .describe('A tensor as bytes: {"dtype":"float32","shape":[2,3],"data":"<base64>"}');

/**
 * A binary tensor of any rank up to 5 (data [batch, ...input shape], weights in their layer's layout),
 * as the model importers read them; BinaryTensor above is the dense-stack schema's, of rank 1 or 2.
 */
export const BinaryTensorN = BinaryTensor.extend({
  dtype: z.enum(['float32', 'int32']).describe('float32, or int32 for integer class labels and token ids'),
  shape: z.array(z.number().int().min(0).max(2 ** 31)).min(1).max(5).describe('The tensor\'s shape, e.g. [batch, 28, 28, 1]'),
});

export type BinaryTensor = z.infer<typeof BinaryTensor>;

/** A binary tensor with its values decoded. */
export interface DecodedTensor {
  dtype: 'float32' | 'int32';
  shape: number[];
  values: Float32Array | Int32Array;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const decoded = new WeakMap<BinaryTensor, DecodedTensor | string>();

/**
 * The values of a binary tensor, or why they cannot be read (a message naming the value found and what
 * is accepted). Decoded once per tensor: the consistency checks and compactRequest both ask.
 */
export function decodeTensor(tensor: BinaryTensor): DecodedTensor | string {
  let result = decoded.get(tensor);
  if (result === undefined) {
    result = decode(tensor);
    decoded.set(tensor, result);
  }
  return result;
}

function decode(tensor: BinaryTensor): DecodedTensor | string {
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  const expected = count * 4;
  if (tensor.data.length % 4 !== 0 || !BASE64.test(tensor.data)) return 'data must be base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4 characters)';
  const bytes = Buffer.from(tensor.data, 'base64');
  if (bytes.length !== expected) {
    return `data holds ${bytes.length} bytes but shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${count} x 4 = ${expected} bytes`;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = tensor.dtype === 'float32' ? new Float32Array(count) : new Int32Array(count);
  for (let i = 0; i < count; i++) values[i] = tensor.dtype === 'float32' ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
  if (tensor.dtype === 'float32') {
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) return `data value ${bad} is ${values[bad]}; values must be finite`;
  }
  return { dtype: tensor.dtype, shape: tensor.shape, values };
}

export const isBinary = (value: unknown): value is BinaryTensor => typeof value === 'object' && value !== null && !Array.isArray(value) && 'dtype' in value;

/** Rows of a validated nested array (all of the same length) as a Matrix. */
export function nestedToMatrix(rows: readonly (readonly number[])[], columns = rows[0]?.length ?? 0): Matrix {
  const values = new Float32Array(rows.length * columns);
  rows.forEach((row, r) => values.set(row, r * columns));
  return { rows: rows.length, columns, values };
}

/** A validated binary tensor as a Matrix ([n] is [n, 1]). */
export const binaryToMatrix = (binary: BinaryTensor): Matrix => {
  const tensor = decodeTensor(binary) as DecodedTensor;
  return {
    rows: tensor.shape[0],
    columns: tensor.shape[1] ?? 1,
    values: tensor.values instanceof Float32Array ? tensor.values : Float32Array.from(tensor.values),
  };
};

/** Base64 of little-endian bytes of `values`: how a client builds a binary tensor (tests, docs). */
export function encodeTensor(values: ArrayLike<number>, shape: number[], dtype: 'float32' | 'int32' = 'float32') {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'float32') view.setFloat32(i * 4, values[i], true);
    else view.setInt32(i * 4, values[i], true);
  }
  return { dtype, shape, data: Buffer.from(view.buffer).toString('base64') };
}
