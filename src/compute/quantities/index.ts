import { lanczosEigen } from '../algorithms/lanczos.js';
import { hutchinsonTrace } from '../algorithms/hutchinson.js';
import { lanczosQuadrature } from '../algorithms/quadrature.js';
import { NumericalError } from '../errors.js';
import { mulberry32 } from '../initializers.js';
import { PreparedModel } from '../model.js';
import { applyInBlocks, countingProducts, curvatureOperator, operatorBlockSize, requiredBlock, type CurvatureProducts, type LinearOperator, type MatrixKind } from '../operators/index.js';
import { exactDiagonal } from './diagonal.js';
import { eigenIterations, maxEigenBasis, type CurvatureQuery, type Quantity, type QuantityResult } from './query.js';

export { exactDiagonal } from './diagonal.js';
export { eigenIterations, isMatrixQuantity, KRYLOV_BUDGET_BYTES, maxEigenBasis, productBudget, queryBytes, type CurvatureQuery, type Quantity, type QuantityResult } from './query.js';

/** operator: M's operator for the model, its products counted (see computeQuantity); engineBlock: see curvatureOperator. */
type Rule<Q extends Quantity> = (
  model: PreparedModel | CurvatureProducts,
  query: Extract<CurvatureQuery, { quantity: Q }>,
  operator: (kind: MatrixKind) => LinearOperator,
  engineBlock?: number,
) => QuantityResult;

/**
 * The exact diagonal: the dense path's factor propagation, or the products' own (the graph engine's
 * blocked unit directions, and per-example gradients for the Fisher).
 */
function diagonalOf(model: PreparedModel | CurvatureProducts, matrix: MatrixKind, engineBlock?: number): Float32Array {
  if (model instanceof PreparedModel) return exactDiagonal(model, matrix);
  return model.diagonal(matrix, operatorBlockSize(model, requiredBlock(engineBlock)));
}

/** One entry per quantity; each is written against the operator of the matrix asked for. */
const QUANTITIES: { [Q in Quantity]: Rule<Q> } = {
  hvp(model, { matrix, vectors }, operator) {
    const packed = new Float32Array(vectors.length * model.size);
    vectors.forEach((v, d) => packed.set(v, d * model.size));
    const products = applyInBlocks(operator(matrix), packed, vectors.length);
    return { fields: { products: vectors.map((_, d) => products.subarray(d * model.size, (d + 1) * model.size)) } };
  },
  ggn: (_model, _query, operator) => ({ fields: {}, matrix: denseMatrix(operator('ggn')) }),
  fisher: (_model, _query, operator) => ({ fields: {}, matrix: denseMatrix(operator('fisher')) }),
  diagonal: (model, { matrix }, _operator, engineBlock) => ({ fields: { diagonal: diagonalOf(model, matrix, engineBlock) } }),
  eigenvalues(model, query, operator) {
    const result = lanczosEigen(operator(query.matrix), {
      k: query.k,
      which: query.which,
      tolerance: query.tolerance,
      maxBasis: maxEigenBasis(model.size),
      maxIterations: eigenIterations(model.size, query.k, query.maxIterations),
      block: query.k,
      random: mulberry32(query.seed),
    });
    return {
      fields: {
        eigenvalues: result.eigenvalues,
        ...(query.vectors ? { eigenvectors: result.eigenvectors } : {}),
        residuals: result.residuals,
        iterations: result.iterations,
        converged: result.converged,
      },
    };
  },
  trace(model, { matrix, method, samples, seed }, operator, engineBlock) {
    if (method === 'exact') return { fields: { trace: diagonalOf(model, matrix, engineBlock).reduce((a, b) => a + b, 0), stdError: 0, samples: null } };
    const { trace, stdError } = hutchinsonTrace(operator(matrix), samples, mulberry32(seed));
    return { fields: { trace, stdError, samples } };
  },
  density(_model, { matrix, runs, steps, gridPoints, seed }, operator) {
    const { nodes, weights, grid, density, sigma } = lanczosQuadrature(operator(matrix), runs, steps, gridPoints, mulberry32(seed));
    return { fields: { nodes, weights, grid, density, sigma } };
  },
};

/**
 * Computes one quantity on a prepared model (the dense path's, or one known by its products);
 * engineBlock: see curvatureOperator. onProducts: told the count of every batch of operator products
 * done (a job's progress; productBudget is the most there will be).
 */
export function computeQuantity(model: PreparedModel | CurvatureProducts, query: CurvatureQuery, engineBlock?: number, onProducts?: (count: number) => void): QuantityResult {
  const operator = (kind: MatrixKind) => countingProducts(curvatureOperator(model, kind, engineBlock), onProducts);
  const result = (QUANTITIES[query.quantity] as Rule<Quantity>)(model, query as never, operator, engineBlock);
  const bad = Object.entries({ ...result.fields, matrix: result.matrix ?? null }).find(([, value]) => !allFinite(value));
  if (bad) throw new NumericalError(`the ${query.quantity} (${bad[0]}) is not finite on this data`);
  return result;
}

function allFinite(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    for (let i = 0; i < (value as ArrayLike<unknown>).length; i++) if (!allFinite((value as ArrayLike<unknown>)[i])) return false;
  }
  return true;
}

/** The operator's matrix from products with unit vectors, a block at a time: P x P row-major. */
function denseMatrix(operator: LinearOperator): Float32Array {
  const { size, blockSize } = operator;
  const matrix = new Float32Array(size * size);
  for (let first = 0; first < size; first += blockSize) {
    const count = Math.min(blockSize, size - first);
    const units = new Float32Array(count * size);
    for (let d = 0; d < count; d++) units[d * size + first + d] = 1;
    matrix.set(operator.apply(units, count), first * size);
  }
  return matrix;
}
