import { hessianTimes } from '../curvature.js';
import type { PreparedModel } from '../model.js';
import { productOperator, type LinearOperator } from './operator.js';

/**
 * G V = mean_b J_b^T Λ_b J_b V (+ 2 l2 V on regularized kernels): the R-operator's forward pass to the
 * logits, Λ (loss and final activation), then a first-order backward pass (see hessianVectorProducts).
 */
export const ggnOperator = (model: PreparedModel, engineBlock: number): LinearOperator =>
  productOperator('ggn', model, engineBlock, (vectors, count) => hessianTimes(model, vectors, count, 'ggn'));
