import { activationRule } from './activations/index.js';
import type { ActivationParams, Keep } from './activations/rule.js';
import { NumericalError } from './errors.js';
import { glorotUniform } from './initializers.js';
import { normalizeLoss, type DenseRequest } from './dense/request.js';
import { DenseLayer } from './layers/dense.js';
import { fusedOutput } from './losses/fusion.js';
import { lossRule } from './losses/index.js';
import type { LossParams, LossRule, LossState } from './losses/rule.js';
import { allParameters, layerInputs, selectParameters, totalSize, type ParameterTensor } from './parameters.js';
import { tf, type Tensor, type Tensor2D } from './tf.js';

/**
 * A validated request evaluated once on its batch: the forward and backward passes, with every
 * direction-independent tensor the curvature passes need. Holds TF.js memory until dispose().
 */
export class PreparedModel {
  readonly layers: DenseLayer[] = [];
  readonly lossState!: LossState;
  /** The tensors the result is over (the `wrt` selection, or all), with offsets in that order. */
  readonly parameters: ParameterTensor[];
  readonly size: number;
  readonly loss: number;
  readonly gradient: Float32Array;
  private readonly kept: Tensor[] = [];

  constructor(readonly request: DenseRequest) {
    this.parameters = selectParameters(request.model, request.wrt);
    this.size = totalSize(this.parameters);
    const keep: Keep = (t) => {
      this.kept.push(t);
      return t;
    };
    let loss = 0;
    let fullGradient: Float32Array = new Float32Array(0);
    const rule = lossRule(normalizeLoss(request.loss).type);
    const output = outputRules(request);
    tf.tidy(() => {
      const prediction = this.forward(keep, output.lastActivation);
      (this as { lossState: LossState }).lossState = rule.apply(prediction, this.targets(rule), output.loss, keep);
      loss = this.lossState.value + this.regularization();
      fullGradient = this.backward(keep);
      return this.kept;
    });
    this.loss = loss;
    this.gradient = this.select(fullGradient);
    // Answers are float32: a loss finite as float64 but not as float32 (above 3.4e38) is no answer either.
    const problem = !Number.isFinite(Math.fround(loss))
      ? `the loss is ${Number.isFinite(loss) ? `${loss}, beyond float32's range,` : loss} on this data (e.g. log of 0 or 1 in a cross-entropy, or an overflow)`
      : !this.gradient.every(Number.isFinite)
        ? 'the gradient is not finite on this data'
        : null;
    if (problem) {
      this.dispose(); // no caller gets this object to release its tensors
      throw new NumericalError(problem);
    }
  }

  get batch(): number {
    return this.request.data.x.rows;
  }

  /** Forward pass; the last layer applies `lastActivation` (see outputRules). */
  private forward(keep: Keep, lastActivation: ActivationSpecObject): Tensor2D {
    const { model, data } = this.request;
    const inputs = layerInputs(model);
    let a = tf.tensor2d(data.x.values, [data.x.rows, data.x.columns], 'float32');
    model.layers.forEach((spec, l) => {
      const kernelValues = spec.kernel?.values ?? glorotUniform(inputs[l], spec.units, model.seed, l);
      const kernel = keep(tf.tensor2d(kernelValues, [inputs[l], spec.units], 'float32'));
      const bias = spec.useBias ? tf.tensor2d(spec.bias ?? new Float32Array(spec.units), [1, spec.units], 'float32') : null;
      const activation = l === model.layers.length - 1 ? lastActivation : asObject(spec.activation);
      const activate = (z: Tensor2D) => activationRule(activation.type).apply(z, activation, keep);
      const layer = new DenseLayer(a, kernel, bias, spec.kernelRegularizer?.l2 ?? 0, activate, keep);
      this.layers.push(layer);
      a = layer.activation.output;
    });
    return a;
  }

  /** Targets as [B, units]: dense rows as given, integer labels one-hot encoded. */
  private targets(rule: LossRule): Tensor2D {
    const { model, data } = this.request;
    const units = model.layers[model.layers.length - 1].units;
    if (rule.targets === 'labels') {
      const labels = Int32Array.from(data.y.values);
      return tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), units), 'float32') as Tensor2D;
    }
    return tf.tensor2d(data.y.values, [data.y.rows, units], 'float32');
  }

  private regularization(): number {
    return this.layers.reduce((sum, layer) => (layer.l2 ? sum + layer.l2 * tf.sum(tf.square(layer.kernel)).dataSync()[0] : sum), 0);
  }

  /** Backward pass; returns the gradient over all parameters in the flat order. */
  private backward(keep: Keep): Float32Array {
    const pieces: Float32Array[] = [];
    let g = this.lossState.gradient;
    for (let l = this.layers.length - 1; l >= 0; l--) {
      const layer = this.layers[l];
      const { inputGradient, parameterGradient } = layer.backward(g, keep);
      let grad = parameterGradient;
      if (layer.l2) {
        // d(l2 Σ W²)/dW = 2 l2 W, on the kernel rows only.
        const kernelPart = tf.add(tf.slice(grad, [0, 0], [layer.inputs, layer.units]), tf.mul(layer.kernel, 2 * layer.l2));
        grad = (layer.inputsAug > layer.inputs ? tf.concat([kernelPart, tf.slice(grad, [layer.inputs, 0], [1, layer.units])], 0) : kernelPart) as Tensor2D;
      }
      pieces[l] = grad.dataSync() as Float32Array;
      g = inputGradient;
    }
    const full = new Float32Array(pieces.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of pieces) {
      full.set(p, offset);
      offset += p.length;
    }
    return full;
  }

  /** Restricts a vector over all parameters to the selected tensors, in their order. */
  private select(full: Float32Array): Float32Array {
    if (!this.request.wrt) return full;
    const all = allParameters(this.request.model);
    const out = new Float32Array(this.size);
    for (const t of this.parameters) {
      const source = all.find((s) => s.name === t.name)!;
      out.set(full.subarray(source.offset, source.offset + source.size), t.offset);
    }
    return out;
  }

  dispose(): void {
    tf.dispose(this.kept);
    this.kept.length = 0;
  }
}

type ActivationSpecObject = ActivationParams & { type: string };

const asObject = (activation: string | ActivationSpecObject): ActivationSpecObject =>
  typeof activation === 'string' ? { type: activation } : activation;

/** The last layer's activation and the loss's parameters as the engine computes them (see fusedOutput). */
function outputRules(request: DenseRequest): { lastActivation: ActivationSpecObject; loss: LossParams } {
  const fused = fusedOutput(normalizeLoss(request.loss), asObject(request.model.layers[request.model.layers.length - 1].activation));
  return { lastActivation: fused.outputActivation, loss: fused.loss };
}
