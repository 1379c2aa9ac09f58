import { lanczosEigen } from '../algorithms/lanczos.js';
import { hutchinsonTrace } from '../algorithms/hutchinson.js';
import { lanczosQuadrature } from '../algorithms/quadrature.js';
import { NumericalError, SpecError, type FieldIssue } from '../errors.js';
import { mulberry32 } from '../initializers.js';
import { PreparedModel } from '../model.js';
import { applyInBlocks, countingProducts, curvatureOperator, type HessianProducts, type LinearOperator, type MatrixKind } from '../operators/index.js';
import { exactDiagonal } from './diagonal.js';
import { eigenIterations, maxEigenBasis, type CurvatureQuery, type Quantity, type QuantityResult } from './query.js';

export { exactDiagonal } from './diagonal.js';
export { eigenIterations, isMatrixQuantity, KRYLOV_BUDGET_BYTES, maxEigenBasis, productBudget, type CurvatureQuery, type Quantity, type QuantityResult } from './query.js';

/** operator: M's operator for the model (see computeQuantity). */
type Rule<Q extends Quantity> = (model: PreparedModel | HessianProducts, query: Extract<CurvatureQuery, { quantity: Q }>, operator: (kind: MatrixKind) => LinearOperator) => QuantityResult;

/** What a model known only by its Hessian products offers (see productsOnlyIssue). */
export const PRODUCT_QUANTITIES = "hvp, eigenvalues, trace with method 'hutchinson' and density, of the hessian";

/**
 * Why a quantity needs more than Hessian-vector products (the GGN's and Fisher's recipes and the exact
 * diagonal are written for dense stacks), naming the field that asks for it; null when products suffice.
 */
export function productsOnlyIssue(query: CurvatureQuery): FieldIssue | null {
  const issue = (path: string, what: string) => ({ path, message: `${what} is computed for stacks of dense layers only; for this model /v1/curvature offers ${PRODUCT_QUANTITIES}` });
  if (query.quantity === 'ggn' || query.quantity === 'fisher' || query.quantity === 'diagonal') return issue('quantity', `quantity '${query.quantity}'`);
  if ('matrix' in query && query.matrix !== 'hessian') return issue('matrix', `matrix '${query.matrix}'`);
  if (query.quantity === 'trace' && query.method === 'exact') return issue('method', "trace's method 'exact' (the sum of the exact diagonal)");
  return null;
}

/** The exact diagonal needs the dense path's prepared model (see productsOnlyIssue). */
const dense = (model: PreparedModel | HessianProducts): PreparedModel => model as PreparedModel;

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
  diagonal: (model, { matrix }) => ({ fields: { diagonal: exactDiagonal(dense(model), matrix) } }),
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
  trace(model, { matrix, method, samples, seed }, operator) {
    if (method === 'exact') return { fields: { trace: exactDiagonal(dense(model), matrix).reduce((a, b) => a + b, 0), stdError: 0, samples: null } };
    const { trace, stdError } = hutchinsonTrace(operator(matrix), samples, mulberry32(seed));
    return { fields: { trace, stdError, samples } };
  },
  density(_model, { matrix, runs, steps, gridPoints, seed }, operator) {
    const { nodes, weights, grid, density, sigma } = lanczosQuadrature(operator(matrix), runs, steps, gridPoints, mulberry32(seed));
    return { fields: { nodes, weights, grid, density, sigma } };
  },
};

/**
 * Computes one quantity on a prepared model (the dense path's, or one known by its Hessian products,
 * which offers PRODUCT_QUANTITIES); engineBlock: see curvatureOperator. onProducts: told the count of
 * every batch of products done (a job's progress; productBudget is the most there will be).
 */
export function computeQuantity(model: PreparedModel | HessianProducts, query: CurvatureQuery, engineBlock?: number, onProducts?: (count: number) => void): QuantityResult {
  const unavailable = model instanceof PreparedModel ? null : productsOnlyIssue(query);
  if (unavailable) throw new SpecError([unavailable]);
  const operator = (kind: MatrixKind) => countingProducts(curvatureOperator(model, kind, engineBlock), onProducts);
  const result = (QUANTITIES[query.quantity] as Rule<Quantity>)(model, query as never, operator);
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
