import { placeColumns } from '../curvature.js';
import { DenseDirections } from '../directions.js';
import type { PreparedModel } from '../model.js';
import { tf, type Tensor2D } from '../tf.js';
import { productOperator, type LinearOperator } from './operator.js';

/**
 * The empirical Fisher F = (1/B) Σ_b g_b g_b^T, g_b the gradient of example b's loss (no regularizer).
 * The batch loss is the mean of the examples' losses, so g_b = B ĝ_b with ĝ_b = a_aug,b ⊗ delta_b per
 * layer (delta of the batch loss) and F = B Σ_b ĝ_b ĝ_b^T. F V needs no per-example gradient in memory:
 * s = Ĝ V is Σ_l rowsum((a_aug V_l) ⊙ delta_l), [B, K]; then F V = B Ĝ^T s, per layer a_aug^T (delta ⊙ s).
 */
export const fisherOperator = (model: PreparedModel, engineBlock: number): LinearOperator =>
  productOperator('fisher', model, engineBlock, (vectors, count) => fisherTimes(model, vectors, count));

function fisherTimes(model: PreparedModel, vectors: Float32Array, count: number): Float32Array {
  const rows = new Float32Array(count * model.size);
  const directions = new DenseDirections(vectors, count, model.parameters, model.layers);
  const layers = [...new Set(model.parameters.map((t) => t.layer))];
  tf.tidy(() => {
    let scores: Tensor2D | null = null; // Ĝ V, [B, K]
    for (const l of layers) {
      const layer = model.layers[l];
      const perExample = tf.sum(tf.mul(directions.inputTerm(l, layer)!, tf.expandDims(layer.delta, 1)), -1) as Tensor2D;
      scores = scores ? (tf.add(scores, perExample) as Tensor2D) : perExample;
    }
    const scaled = tf.mul(scores!, model.batch) as Tensor2D;
    for (const l of layers) {
      const layer = model.layers[l];
      const weighted = tf.reshape(tf.mul(tf.expandDims(layer.delta, 1), tf.expandDims(scaled, 2)), [layer.batch, count * layer.units]);
      const fromDelta = tf.matMul(layer.inputAugT, weighted).dataSync() as Float32Array;
      for (const t of model.parameters.filter((p) => p.layer === l)) {
        placeColumns(rows, model.size, count, t, layer.inputs, layer.units, { fromDelta, fromInput: null });
      }
    }
  });
  return rows;
}
