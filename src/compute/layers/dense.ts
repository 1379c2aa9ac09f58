import type { ActivationState, Keep } from '../activations/rule.js';
import { tf, type Tensor2D, type Tensor3D } from '../tf.js';

/**
 * A dense layer z = a · W + b, f(z), prepared on one batch. The input gets a column of ones when the
 * layer has a bias, so that [W; b] acts as one augmented kernel whose row-major flattening is exactly
 * this layer's part of the flat parameter vector (kernel, then bias).
 *
 * Directional tensors are [B, K, width], rows ordered example-major, so that K directions ride along as
 * extra rows of plain 2-D matMuls ([B*K, n] @ [n, m]) and batch contractions are [n, B] @ [B, K*m].
 */
export class DenseLayer {
  readonly inputs: number;
  readonly units: number;
  /** a_aug [B, n(+1)] and its transpose, direction-independent. */
  readonly inputAug: Tensor2D;
  readonly inputAugT: Tensor2D;
  readonly kernelT: Tensor2D;
  readonly activation: ActivationState;
  /** dL/dz [B, m] and its transpose, set by backward(). */
  delta!: Tensor2D;
  deltaT!: Tensor2D;

  constructor(
    input: Tensor2D,
    readonly kernel: Tensor2D,
    bias: Tensor2D | null,
    readonly l2: number,
    activate: (z: Tensor2D) => ActivationState,
    keep: Keep,
  ) {
    this.inputs = kernel.shape[0];
    this.units = kernel.shape[1];
    const batch = input.shape[0];
    this.inputAug = keep(bias ? (tf.concat([input, tf.ones([batch, 1])], 1) as Tensor2D) : input);
    this.inputAugT = keep(tf.transpose(this.inputAug));
    this.kernelT = keep(tf.transpose(kernel));
    this.activation = activate(bias ? (tf.add(tf.matMul(input, kernel), bias) as Tensor2D) : tf.matMul(input, kernel));
  }

  get batch(): number {
    return this.inputAug.shape[0];
  }

  /** Augmented input width: inputs, plus one for the bias column. */
  get inputsAug(): number {
    return this.inputAug.shape[1];
  }

  /** Backward pass: stores delta, returns dL/d(input) and the augmented-kernel gradient [n(+1), m]. */
  backward(g: Tensor2D, keep: Keep): { inputGradient: Tensor2D; parameterGradient: Tensor2D } {
    this.delta = keep(this.activation.backward(g));
    this.deltaT = keep(tf.transpose(this.delta));
    return { inputGradient: tf.matMul(this.delta, this.kernelT), parameterGradient: tf.matMul(this.inputAugT, this.delta) };
  }

  /** R(z) = R(a_in) W + (a_aug V), either term possibly absent (zero). */
  rForward(rInput: Tensor3D | null, seedTerm: Tensor3D | null): Tensor3D | null {
    const [batch, k] = rInput ? rInput.shape : [0, 0];
    const propagated = rInput ? (tf.reshape(tf.matMul(tf.reshape(rInput, [batch * k, this.inputs]), this.kernel), [batch, k, this.units]) as Tensor3D) : null;
    return sum(propagated, seedTerm);
  }

  /** R(delta) = J^T R(g) + curvature term along R(z). */
  rDelta(rg: Tensor3D, rz: Tensor3D | null): Tensor3D {
    const firstOrder = this.activation.vjp(rg);
    return sum(firstOrder, rz ? this.activation.curvature(rz) : null)!;
  }

  /** R(dL/d input) = R(delta) W^T + (delta V^T). */
  rBackward(rDelta: Tensor3D, seedTerm: Tensor3D | null): Tensor3D {
    const [batch, k] = rDelta.shape;
    const propagated = tf.reshape(tf.matMul(tf.reshape(rDelta, [batch * k, this.units]), this.kernelT), [batch, k, this.inputs]) as Tensor3D;
    return sum(propagated, seedTerm)!;
  }

  /**
   * This layer's rows of the K Hessian-vector products, R(dL/dW_aug) = a_aug^T R(delta) + R(a_in)^T delta,
   * as two host arrays in the layouts the matMuls give without transposes:
   * fromDelta [n(+1), K*m] at [i, d*m + j], fromInput [m, K*n] at [j, d*n + i] (null when R(a_in) = 0).
   */
  rowContributions(rDelta: Tensor3D, rInput: Tensor3D | null): { fromDelta: Float32Array; fromInput: Float32Array | null } {
    const [batch, k] = rDelta.shape;
    const fromDelta = tf.matMul(this.inputAugT, tf.reshape(rDelta, [batch, k * this.units])).dataSync() as Float32Array;
    const fromInput = rInput
      ? (tf.matMul(this.deltaT, tf.reshape(rInput, [batch, k * this.inputs])).dataSync() as Float32Array)
      : null;
    return { fromDelta, fromInput };
  }
}

function sum(a: Tensor3D | null, b: Tensor3D | null): Tensor3D | null {
  if (a && b) return tf.add(a, b) as Tensor3D;
  return a ?? b;
}
