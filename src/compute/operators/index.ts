import { estimateCost } from '../cost.js';
import { costShape, DEFAULT_MEMORY_BUDGET_BYTES } from '../index.js';
import type { PreparedModel } from '../model.js';
import { fisherOperator } from './fisher.js';
import { ggnOperator } from './ggn.js';
import { hessianOperator } from './hessian.js';
import type { LinearOperator, MatrixKind } from './operator.js';

export { applyInBlocks, type LinearOperator, type MatrixKind } from './operator.js';

/** One recipe per matrix; adding a matrix is adding its file and a line here. */
const OPERATORS: Record<MatrixKind, (model: PreparedModel, engineBlock: number) => LinearOperator> = {
  hessian: hessianOperator,
  ggn: ggnOperator,
  fisher: fisherOperator,
};

export const MATRIX_KINDS = Object.keys(OPERATORS) as MatrixKind[];

/** M's operator; engineBlock: directions per product the memory budget allows (the admission's block size). */
export const curvatureOperator = (
  model: PreparedModel,
  kind: MatrixKind,
  engineBlock = estimateCost(costShape(model.request), DEFAULT_MEMORY_BUDGET_BYTES).blockSize,
): LinearOperator => OPERATORS[kind](model, engineBlock);
