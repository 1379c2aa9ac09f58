import { hessianTimes } from '../curvature.js';
import type { PreparedModel } from '../model.js';
import { productOperator, type LinearOperator } from './operator.js';

/** H V by the R-operator (every second-order term, the regularizer included). */
export const hessianOperator = (model: PreparedModel, engineBlock: number): LinearOperator =>
  productOperator('hessian', model, engineBlock, (vectors, count) => hessianTimes(model, vectors, count, 'hessian'));
