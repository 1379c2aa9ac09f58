import { estimateCost } from '../cost.js';
import { costShape, DEFAULT_MEMORY_BUDGET_BYTES } from '../index.js';
import { PreparedModel } from '../model.js';
import { fisherOperator } from './fisher.js';
import { ggnOperator } from './ggn.js';
import { hessianOperator } from './hessian.js';
import { productOperator, type CurvatureProducts, type LinearOperator, type MatrixKind } from './operator.js';

export { applyInBlocks, countingProducts, operatorBlockSize, type CurvatureProducts, type LinearOperator, type MatrixKind } from './operator.js';

/** One recipe per matrix; adding a matrix is adding its file and a line here. */
const OPERATORS: Record<MatrixKind, (model: PreparedModel, engineBlock: number) => LinearOperator> = {
  hessian: hessianOperator,
  ggn: ggnOperator,
  fisher: fisherOperator,
};

export const MATRIX_KINDS = Object.keys(OPERATORS) as MatrixKind[];

/**
 * M's operator; engineBlock: directions per product the memory budget allows (the admission's block
 * size; required for a model known by its products, whose own products give every M).
 */
export function curvatureOperator(model: PreparedModel | CurvatureProducts, kind: MatrixKind, engineBlock?: number): LinearOperator {
  if (model instanceof PreparedModel) return OPERATORS[kind](model, engineBlock ?? estimateCost(costShape(model.request), DEFAULT_MEMORY_BUDGET_BYTES).blockSize);
  return productOperator(kind, model, requiredBlock(engineBlock), (vectors, count) => model.times(kind, vectors, count));
}

/** The directions per product of a model known by its products, which only its admission knows. */
export function requiredBlock(engineBlock: number | undefined): number {
  if (engineBlock === undefined) throw new Error('the directions per product of a graph model come from its admission');
  return engineBlock;
}
