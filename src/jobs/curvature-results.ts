import type { MatrixKind } from '../compute/operators/index.js';
import { isMatrixQuantity, type CurvatureQuery, type Quantity, type QuantityResult } from '../compute/quantities/query.js';
import { densityPng, topNodes } from '../pictures/density.js';
import { heatmapPng, type RowReader } from '../pictures/heatmap.js';
import type { ParameterEntry } from '../schemas/api.js';
import { formatRows, RESULT_TYPES, rowsPerRead, type ResultFormat } from './results.js';

/**
 * A curvature answer in the forms POST /v1/curvature and a curvature job's /result serve, written once
 * for both: the JSON document, and the pictures.
 */

/** The forms a quantity's answer is served in: JSON always; the matrices also binary, .npy and a heatmap; the density a plot. */
export function curvatureForms(quantity: Quantity): Partial<Record<ResultFormat, string>> {
  if (isMatrixQuantity(quantity)) return RESULT_TYPES;
  return quantity === 'density' ? { json: RESULT_TYPES.json, png: RESULT_TYPES.png } : { json: RESULT_TYPES.json };
}

/** What a curvature answer is about: the parameter map, the quantity and, unless a matrix quantity, its matrix. */
export interface CurvatureHead {
  parameters: ParameterEntry[];
  size: number;
  quantity: Quantity;
  matrix?: MatrixKind;
}

/**
 * The JSON document, in chunks: float32 values in their shortest form, as /v1/hessian writes them; a
 * matrix quantity's rows read a few at a time (from memory, or from a job's file), never all as text.
 */
export async function* curvatureDocument(
  head: CurvatureHead,
  loss: number,
  fields: QuantityResult['fields'],
  meta: object,
  readRows?: RowReader,
): AsyncGenerator<string> {
  const { parameters, size, quantity, matrix } = head;
  const parts = [`"parameters":${JSON.stringify(parameters)}`, `"size":${size}`, `"quantity":"${quantity}"`];
  if (matrix) parts.push(`"matrix":"${matrix}"`);
  parts.push(`"loss":${JSON.stringify(loss)}`);
  yield `{${parts.join(',')}`;
  if (readRows) {
    yield `,"${quantity}":[`;
    const step = rowsPerRead(size);
    for (let first = 0; first < size; first += step) {
      const count = Math.min(step, size - first);
      yield (first > 0 ? ',' : '') + (await formatRows(await readRows(first, count), size, count));
    }
    yield ']';
  }
  for (const [key, value] of Object.entries(fields)) yield `,"${key}":${await jsonValue(value)}`;
  yield `,"meta":${JSON.stringify(meta)}}`;
}

/** The whole document as one string (an answer computed in memory). */
export async function curvatureDocumentText(...args: Parameters<typeof curvatureDocument>): Promise<string> {
  let text = '';
  for await (const chunk of curvatureDocument(...args)) text += chunk;
  return text;
}

async function jsonValue(value: QuantityResult['fields'][string]): Promise<string> {
  if (value instanceof Float32Array) return formatRows(value, value.length, 1);
  if (Array.isArray(value) && value[0] instanceof Float32Array) {
    const rows = await Promise.all((value as Float32Array[]).map((v) => formatRows(v, v.length, 1)));
    return `[${rows.join(',')}]`;
  }
  return JSON.stringify(value);
}

/**
 * The heatmap of a ggn / fisher matrix (its rows from `readRows`), or the plot of a density with its
 * top 3 Ritz values marked (from its fields).
 */
export async function curvaturePicture(head: CurvatureHead, fields: QuantityResult['fields'], readRows?: RowReader): Promise<Buffer> {
  if (head.quantity === 'density') {
    const title = `Spectral density of the ${head.matrix ?? 'hessian'} (log scale), P = ${head.size}`;
    return densityPng(title, fields.grid as number[], fields.density as number[], topNodes(fields.nodes as number[][], 3));
  }
  const title = head.quantity === 'ggn' ? 'Generalized Gauss-Newton' : 'Empirical Fisher';
  return heatmapPng(title, head.size, head.parameters, readRows!);
}

/**
 * Characters a number takes at most in the document, with its comma: JavaScript's form, which writes up
 * to 21 digits before switching to an exponent, and a sign (a float32 in shortest form never takes more).
 */
const NUMBER_CHARS = 25;
/** The document's keys, brackets, scalars and meta (the backend's description) take less than this. */
const DOCUMENT_OVERHEAD = 8192;

/**
 * An upper bound of the bytes of a quantity's JSON document (not a matrix: a job stores those as
 * matrices), known before it is computed: what a job holds under MAX_RESULTS_BYTES until it is written.
 */
export function documentBytesBound(query: CurvatureQuery, head: CurvatureHead): number {
  return DOCUMENT_OVERHEAD + JSON.stringify(head.parameters).length + documentNumbers(query, head.size) * NUMBER_CHARS;
}

/** Numbers in a quantity's answer, at most. */
function documentNumbers(query: CurvatureQuery, size: number): number {
  switch (query.quantity) {
    case 'hvp':
      return query.vectors.length * size;
    case 'diagonal':
      return size;
    case 'eigenvalues':
      return (query.vectors ? query.k * size : 0) + 2 * query.k; // eigenvectors, eigenvalues and residuals
    case 'density':
      return 2 * query.runs * Math.min(query.steps, size) + 2 * query.gridPoints; // nodes and weights, grid and density
    default:
      return 0;
  }
}
