import type { DenseLayer } from '../layers/dense.js';
import type { PreparedModel } from '../model.js';
import type { MatrixKind } from '../operators/index.js';
import type { ParameterTensor } from '../parameters.js';
import { tf, type Tensor, type Tensor2D, type Tensor3D } from '../tf.js';

/**
 * The exact diagonal of H, G or F over the selected parameters, without any product with unit vectors.
 *
 * A dense layer's z = a_aug W_aug is linear in W_aug and example b's z depends on no other example, so
 * diag(M) at W_aug[i, j] = Σ_b a_aug[b, i]² · C_b[j, j], where C_b is the curvature of example b's loss
 * with respect to the layer's pre-activation z_b: one [n+1, B] @ [B, m] product per layer once diag(C_b)
 * is known (plus 2 l2 on regularized kernels for H and G). C_b is carried down the network in factored
 * form, BackPACK-style: a sum of blocks Fᵀ M F with per-example factors F [B, w, m] (w directions in
 * z-space) and middles M, full [B, w, w] or diagonal [B, w]:
 * - at the top, C = Λ (loss and last activation w.r.t. the logits), F = identity;
 * - one layer down, every F becomes J_act^T W F (layer.rBackward, then the activation's vjp);
 * - for H only, each hidden activation adds its own curvature term diag(g ⊙ f'') as a new block.
 * The F-matrix is the per-example gradient outer product instead: diag = B (a_aug²)ᵀ (delta²).
 * Cost: the factors' width grows by a layer's units per hidden activation with curvature, so a block
 * below two such layers is [B, m, m]: about B·m² floats and B·m²·n multiply-adds per layer (as BackPACK).
 */
export function exactDiagonal(model: PreparedModel, kind: MatrixKind): Float32Array {
  const out = new Float32Array(model.size);
  const place = (l: number, values: Float32Array) => placeLayer(out, model.parameters, model.layers[l], l, values, kind !== 'fisher');
  if (kind === 'fisher') {
    for (const l of selectedLayers(model)) place(l, fisherLayerDiagonal(model, model.layers[l]));
    return out;
  }
  const layers = model.layers;
  const lowest = Math.min(...selectedLayers(model));
  let blocks = [topBlock(model)];
  try {
    for (let l = layers.length - 1; l >= lowest; l--) {
      const layer = layers[l];
      if (model.parameters.some((t) => t.layer === l)) place(l, layerDiagonal(layer, blocks));
      if (l === lowest) break;
      const below = layers[l - 1];
      const previous = blocks;
      blocks = previous.map((block) => propagate(block, layer, below));
      tf.dispose(previous.flatMap((b) => (b.factor ? [b.factor] : []))); // the middles move on
      if (kind === 'hessian') {
        const residual = activationCurvature(below);
        if (residual) blocks.push(residual);
      }
    }
  } finally {
    disposeBlocks(blocks);
  }
  return out;
}

/** C_b = Fᵀ M F per example; factor null means the identity (F = I, w = m). */
interface CurvatureBlock {
  factor: Tensor3D | null;
  middle: Tensor3D | Tensor2D;
}

const selectedLayers = (model: PreparedModel) => [...new Set(model.parameters.map((t) => t.layer))];

const identity = (batch: number, m: number): Tensor3D => tf.tile(tf.expandDims(tf.eye(m), 0), [batch, 1, 1]) as Tensor3D;

/** Λ_b [B, m, m]: the loss's curvature along the unit directions of the logits, through the last activation. */
function topBlock(model: PreparedModel): CurvatureBlock {
  const top = model.layers[model.layers.length - 1];
  const middle = tf.tidy(() => {
    const units = identity(top.batch, top.units);
    return top.rDelta(model.lossState.hvp(top.activation.jvp(units)), units);
  });
  return { factor: null, middle };
}

/** diag(C_b) [B, m] summed over the blocks. */
function curvatureDiagonal(blocks: readonly CurvatureBlock[]): Tensor2D {
  return tf.tidy(() =>
    blocks
      .map(({ factor, middle }): Tensor2D => {
        if (middle.rank === 2) return factor ? (tf.sum(tf.mul(tf.square(factor), tf.expandDims(middle, 2)), 1) as Tensor2D) : (middle as Tensor2D);
        if (!factor) return tf.sum(tf.mul(middle, tf.eye(middle.shape[1]!)), 2) as Tensor2D;
        return tf.sum(tf.mul(factor, tf.matMul(middle as Tensor3D, factor)), 1) as Tensor2D;
      })
      .reduce((a, b) => tf.add(a, b) as Tensor2D),
  );
}

/** Σ_b a_aug[b, i]² diag(C_b)[j], laid out as the augmented kernel [n(+1), m]. */
function layerDiagonal(layer: DenseLayer, blocks: readonly CurvatureBlock[]): Float32Array {
  return tf.tidy(() => tf.matMul(tf.square(layer.inputAugT), curvatureDiagonal(blocks)).dataSync() as Float32Array);
}

/** B Σ_b a_aug[b, i]² delta[b, j]²: the Fisher's diagonal, [n(+1), m]. */
function fisherLayerDiagonal(model: PreparedModel, layer: DenseLayer): Float32Array {
  return tf.tidy(() => tf.mul(tf.matMul(tf.square(layer.inputAugT), tf.square(layer.delta)), model.batch).dataSync() as Float32Array);
}

/** The block one layer down: F <- J_act(below)ᵀ Wᵀ F (per direction), same middle. */
function propagate(block: CurvatureBlock, layer: DenseLayer, below: DenseLayer): CurvatureBlock {
  const factor = tf.tidy(() => below.activation.vjp(layer.rBackward(block.factor ?? identity(layer.batch, layer.units), null)));
  return { factor, middle: block.middle };
}

/** The hidden activation's own second-order term as a block at its pre-activation, or null if zero. */
function activationCurvature(layer: DenseLayer): CurvatureBlock | null {
  const { activation } = layer;
  // tf.tidy keeps the returned tensor (and frees the intermediates); null means no curvature term.
  let middle: Tensor2D | Tensor3D | null = null;
  tf.tidy(() => {
    middle = activation.curvatureDiagonal ? activation.curvatureDiagonal() : activation.curvature(identity(layer.batch, layer.units));
    if (middle) tf.keep(middle);
  });
  return middle ? { factor: null, middle } : null;
}

function disposeBlocks(blocks: readonly CurvatureBlock[]): void {
  tf.dispose(blocks.flatMap((b): Tensor[] => (b.factor ? [b.factor, b.middle] : [b.middle])));
}

/** Copies a layer's [n(+1), m] values into its selected tensors; adds 2 l2 on a regularized kernel. */
function placeLayer(out: Float32Array, tensors: readonly ParameterTensor[], layer: DenseLayer, l: number, values: Float32Array, regularized: boolean): void {
  const kernelSize = layer.inputs * layer.units;
  for (const t of tensors.filter((p) => p.layer === l)) {
    const from = t.kind === 'kernel' ? 0 : kernelSize;
    out.set(values.subarray(from, from + t.size), t.offset);
    if (regularized && t.kind === 'kernel' && layer.l2) {
      for (let e = 0; e < t.size; e++) out[t.offset + e] += 2 * layer.l2;
    }
  }
}
