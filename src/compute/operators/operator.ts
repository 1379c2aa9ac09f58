/** The curvature matrices the service offers as operators (and, up to MAX_PARAMETERS, as matrices). */
export type MatrixKind = 'hessian' | 'ggn' | 'fisher';

/**
 * A prepared model known through its batched products (the graph engine's PreparedGraph): M V for K
 * directions V [K x P] (row-major) and M's exact diagonal, for each matrix M.
 */
export interface CurvatureProducts {
  readonly size: number;
  times(kind: MatrixKind, vectors: Float32Array, count: number): Float32Array;
  /** diag(M), computed `blockSize` directions (or examples) at a time. */
  diagonal(kind: MatrixKind, blockSize: number): Float32Array;
}

/**
 * A symmetric P x P curvature matrix M known only through products (curvlinops-style): every algorithm
 * (Lanczos, Hutchinson, quadrature, the dense matrix) is written against this and works for any M.
 */
export interface LinearOperator {
  readonly kind: MatrixKind;
  readonly size: number;
  /** Most directions one apply() should carry: bounds the working memory of a product. */
  readonly blockSize: number;
  /** M V for K directions V [K x P] (row-major); returns [K x P]. */
  apply(vectors: Float32Array, count: number): Float32Array;
}

/** An operator from its product; `engineBlock` is the admission's directions per task (MAX_WORKER_MEMORY_MB). */
export const productOperator = (
  kind: MatrixKind,
  model: { readonly size: number },
  engineBlock: number,
  apply: (vectors: Float32Array, count: number) => Float32Array,
): LinearOperator => ({ kind, size: model.size, blockSize: operatorBlockSize(model, engineBlock), apply });

/** A working set of about 2^23 floats (32 MB) per K x P array the product allocates. */
const FLOATS_PER_BLOCK = 2 ** 23;

/** Directions per product: the engine's matMul-friendly block, fewer when P is large. */
export const operatorBlockSize = (model: { readonly size: number }, engineBlock: number): number =>
  Math.max(1, Math.min(engineBlock, Math.floor(FLOATS_PER_BLOCK / Math.max(model.size, 1))));

/** M V for any number of directions, in blocks of the operator's size. */
export function applyInBlocks(operator: LinearOperator, vectors: Float32Array, count: number): Float32Array {
  const { size, blockSize } = operator;
  if (count <= blockSize) return operator.apply(vectors, count);
  const out = new Float32Array(count * size);
  for (let first = 0; first < count; first += blockSize) {
    const k = Math.min(blockSize, count - first);
    out.set(operator.apply(vectors.subarray(first * size, (first + k) * size), k), first * size);
  }
  return out;
}

/** The operator, telling `onProducts` the count of every batch of products it has done. */
export const countingProducts = (operator: LinearOperator, onProducts?: (count: number) => void): LinearOperator =>
  onProducts
    ? {
        ...operator,
        apply(vectors, count) {
          const products = operator.apply(vectors, count);
          onProducts(count);
          return products;
        },
      }
    : operator;
