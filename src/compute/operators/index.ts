import { estimateCost } from '../cost.js';
import { costShape, DEFAULT_MEMORY_BUDGET_BYTES } from '../index.js';
import { PreparedModel } from '../model.js';
import { fisherOperator } from './fisher.js';
import { ggnOperator } from './ggn.js';
import { hessianOperator } from './hessian.js';
import { productOperator, type HessianProducts, type LinearOperator, type MatrixKind } from './operator.js';
import { SpecError } from '../errors.js';

export { applyInBlocks, countingProducts, type HessianProducts, type LinearOperator, type MatrixKind } from './operator.js';

/** One recipe per matrix; adding a matrix is adding its file and a line here. */
const OPERATORS: Record<MatrixKind, (model: PreparedModel, engineBlock: number) => LinearOperator> = {
  hessian: hessianOperator,
  ggn: ggnOperator,
  fisher: fisherOperator,
};

export const MATRIX_KINDS = Object.keys(OPERATORS) as MatrixKind[];

/**
 * M's operator; engineBlock: directions per product the memory budget allows (the admission's block
 * size; required for a model known only by its products). Such a model has the Hessian's operator only.
 */
export function curvatureOperator(model: PreparedModel | HessianProducts, kind: MatrixKind, engineBlock?: number): LinearOperator {
  if (model instanceof PreparedModel) return OPERATORS[kind](model, engineBlock ?? estimateCost(costShape(model.request), DEFAULT_MEMORY_BUDGET_BYTES).blockSize);
  if (kind !== 'hessian') throw new SpecError([{ path: 'matrix', message: `matrix '${kind}' is computed for stacks of dense layers only; this model offers the hessian` }]);
  if (engineBlock === undefined) throw new Error('the directions per product of a graph model come from its admission');
  return productOperator('hessian', model, engineBlock, (vectors, count) => model.hessianTimes(vectors, count));
}
