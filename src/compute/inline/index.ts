/**
 * The inline path: the full Hessian of a tiny dense stack in plain JavaScript, float64, in the calling
 * thread, with no TF.js op, no worker and no copy of the request. For requests of a few thousand
 * operations (the README's 2x2 request is about 600) TF.js costs more in per-op overhead and the worker
 * round trip than the arithmetic itself (its 2x2 answer takes about 5 µs here against some 0.4 ms of TF.js
 * work in a worker); the HTTP route uses this path for requests whose estimate (inlineCost) is within
 * INLINE_MAX_FLOPS, so that it never holds the event loop noticeably.
 *
 * It is the R-operator (Pearlmutter) with unit directions over the selected parameters, per example,
 * with the activations' and losses' float64 forms (ActivationRule.scalar, LossRule.example); the
 * answer is rounded to float32 like every other. A model with a layer or loss that has no float64
 * form (gelu, softmax in a hidden layer), kernels drawn from the seed aside, is not taken (null).
 */
import { activationRule } from '../activations/index.js';
import type { ActivationParams, ScalarActivation } from '../activations/rule.js';
import { denseStack, normalizeLoss } from '../dense/request.js';
import { glorotUniformValues } from '../initializers.js';
import { fusedOutput } from '../losses/fusion.js';
import { lossRule } from '../losses/index.js';
import type { ExampleLoss, LossParams } from '../losses/rule.js';
import { allParameters, layerInputs, selectParameters, totalSize, type ParameterTensor } from '../parameters.js';
import type { EngineRequest } from '../spec.js';

interface InlineLayer {
  inputs: number;
  units: number;
  /** [inputs x units] row-major, float64. */
  kernel: Float64Array;
  bias: Float64Array | null;
  activation: ScalarActivation;
  params: ActivationParams;
  l2: number;
  /** Offsets of its kernel and bias in the full parameter vector (bias -1 without one). */
  kernelOffset: number;
  biasOffset: number;
}

/** A request the inline path can compute, with its cost; see inlineModel. */
export interface InlineModel {
  layers: InlineLayer[];
  loss: ExampleLoss;
  lossParams: LossParams;
  /** [batch x features] and [batch x outputs] (labels one-hot), float64. */
  x: Float64Array;
  y: Float64Array;
  batch: number;
  /** The answer's parameters (after `wrt`), and where each selected row sits in the full vector. */
  parameters: ParameterTensor[];
  fullIndex: Int32Array;
  fullSize: number;
  /** Estimated floating-point operations of inlineHessian. */
  flops: number;
}

export interface InlineResult {
  parameters: ParameterTensor[];
  size: number;
  loss: number;
  gradient: Float32Array;
  hessian: Float32Array;
  meta: { backend: 'js'; dtype: 'float32'; elapsedMs: number; method: 'rOperator' };
}

/**
 * The request as the inline path takes it, or null when it does not: estimated at more than
 * `maxFlops` operations (checked before anything is allocated), not a dense stack, an activation or
 * loss with no float64 form, or integer labels outside [0, units) (left to the engine's own checks).
 */
export function inlineModel(request: EngineRequest, maxFlops: number): InlineModel | null {
  const dense = denseStack(request);
  if (!dense) return null;
  const { model, data } = dense;
  const last = model.layers.length - 1;
  const inputs = layerInputs(model);
  const parameters = selectParameters(model, dense.wrt);
  const flops = inlineCost(
    model.layers.map(({ units }, l) => ({ inputs: inputs[l], units })),
    data.x.rows,
    totalSize(parameters),
  );
  if (flops > maxFlops) return null; // before anything is copied
  const lossSpec = normalizeLoss(dense.loss);
  const lastSpec = model.layers[last].activation;
  const fused = fusedOutput(lossSpec, typeof lastSpec === 'string' ? { type: lastSpec } : lastSpec);
  const rule = lossRule(lossSpec.type);
  if (!rule.example) return null;
  const all = allParameters(model);
  const layers: InlineLayer[] = [];
  for (let l = 0; l <= last; l++) {
    const spec = model.layers[l];
    const activationSpec = l === last ? fused.outputActivation : typeof spec.activation === 'string' ? { type: spec.activation } : spec.activation;
    const activation = activationRule(activationSpec.type).scalar;
    if (!activation) return null;
    const units = spec.units;
    const kernel = spec.kernel ? Float64Array.from(spec.kernel.values) : glorotUniformValues(inputs[l] * units, inputs[l], units, model.seed, l).map(Math.fround);
    const placed = all.filter((t) => t.layer === l);
    layers.push({
      inputs: inputs[l],
      units,
      kernel,
      bias: spec.useBias ? (spec.bias ? Float64Array.from(spec.bias) : new Float64Array(units)) : null,
      activation,
      params: activationSpec,
      l2: spec.kernelRegularizer?.l2 ?? 0,
      kernelOffset: placed.find((t) => t.kind === 'kernel')!.offset,
      biasOffset: placed.find((t) => t.kind === 'bias')?.offset ?? -1,
    });
  }
  const batch = data.x.rows;
  const outputs = model.layers[last].units;
  let y: Float64Array;
  if (rule.targets === 'labels') {
    y = new Float64Array(batch * outputs);
    for (let b = 0; b < batch; b++) {
      const label = data.y.values[b];
      if (!Number.isInteger(label) || label < 0 || label >= outputs) return null;
      y[b * outputs + label] = 1;
    }
  } else {
    if (data.y.values.length !== batch * outputs) return null;
    y = Float64Array.from(data.y.values);
  }
  const fullIndex = new Int32Array(totalSize(parameters));
  for (const tensor of parameters) {
    const full = all.find((t) => t.name === tensor.name)!.offset;
    for (let i = 0; i < tensor.size; i++) fullIndex[tensor.offset + i] = full + i;
  }
  return {
    layers,
    loss: rule.example,
    lossParams: fused.loss,
    x: Float64Array.from(data.x.values),
    y,
    batch,
    parameters,
    fullIndex,
    fullSize: totalSize(all),
    flops,
  };
}

/**
 * Operations of inlineHessian: per example a forward and backward pass (4 per weight) and, per
 * selected direction, its R-forward and R-backward passes (6 per weight), the loss Hessian times R(a)
 * and the element-wise terms.
 */
function inlineCost(layers: readonly Pick<InlineLayer, 'inputs' | 'units'>[], batch: number, directions: number): number {
  const weights = layers.reduce((n, l) => n + (l.inputs + 1) * l.units, 0);
  const units = layers.reduce((n, l) => n + l.units, 0);
  const outputs = layers[layers.length - 1].units;
  return batch * (4 * weights + 10 * units + outputs * outputs + directions * (6 * weights + 2 * outputs * outputs + 10 * units));
}

/**
 * Loss, gradient and Hessian of an inlineModel, rounded to float32; null when any of them is not
 * finite in float32 (the engine then computes it and reports the numerical error in its words).
 */
export function inlineHessian(model: InlineModel): InlineResult | null {
  const started = performance.now();
  const { layers, batch, fullIndex, fullSize, x, y } = model;
  const depth = layers.length;
  const outputs = layers[depth - 1].units;
  const size = fullIndex.length;
  const buffers = () => layers.map((l) => new Float64Array(l.units));
  // Per example: each layer's input a[l] (a[depth] the output), z's derivatives, dL/da of each layer's output, dL/dz.
  const a = [new Float64Array(layers[0].inputs), ...buffers()];
  const d1 = buffers();
  const d2 = buffers();
  const outGrad = buffers();
  const dz = buffers();
  // One direction's R-values: R(z), R(a) of each output, R(dL/da) of each output.
  const rz = buffers();
  const ra = buffers();
  const rOutGrad = buffers();
  const rdz = new Float64Array(Math.max(...layers.map((l) => l.units)));
  const lossGradient = new Float64Array(outputs);
  const lossHessian = new Float64Array(outputs * outputs);
  const gradient = new Float64Array(fullSize);
  const rows = new Float64Array(size * fullSize); // row s: d(gradient)/d(theta_s), summed over the batch
  let loss = 0;

  for (let b = 0; b < batch; b++) {
    a[0].set(x.subarray(b * layers[0].inputs, (b + 1) * layers[0].inputs));
    for (let l = 0; l < depth; l++) {
      const { inputs, units, kernel, bias, activation, params } = layers[l];
      const input = a[l];
      for (let j = 0; j < units; j++) {
        let z = bias ? bias[j] : 0;
        for (let i = 0; i < inputs; i++) z += input[i] * kernel[i * units + j];
        const [value, first, second] = activation(z, params);
        a[l + 1][j] = value;
        d1[l][j] = first;
        d2[l][j] = second;
      }
    }
    loss += model.loss(a[depth], y.subarray(b * outputs, (b + 1) * outputs), model.lossParams, lossGradient, lossHessian);
    outGrad[depth - 1].set(lossGradient);
    for (let l = depth - 1; l >= 0; l--) {
      const { inputs, units, kernel, kernelOffset, biasOffset } = layers[l];
      for (let j = 0; j < units; j++) dz[l][j] = d1[l][j] * outGrad[l][j];
      for (let i = 0; i < inputs; i++) {
        let back = 0;
        for (let j = 0; j < units; j++) {
          gradient[kernelOffset + i * units + j] += a[l][i] * dz[l][j];
          back += kernel[i * units + j] * dz[l][j];
        }
        if (l > 0) outGrad[l - 1][i] = back;
      }
      if (biasOffset >= 0) for (let j = 0; j < units; j++) gradient[biasOffset + j] += dz[l][j];
    }

    for (let s = 0; s < size; s++) {
      // The direction: the unit vector of full parameter k, in layer `first`.
      const k = fullIndex[s];
      let first = depth - 1;
      while (layers[first].kernelOffset > k) first--;
      const layer = layers[first];
      const inKernel = k < layer.kernelOffset + layer.inputs * layer.units;
      const within = inKernel ? k - layer.kernelOffset : k - layer.biasOffset;
      const row = inKernel ? Math.floor(within / layer.units) : -1; // kernel row p (bias: none)
      const column = inKernel ? within % layer.units : within; // unit q
      // R-forward from the layer holding the direction (R(a) is 0 before it).
      for (let l = first; l < depth; l++) {
        const { inputs, units, kernel } = layers[l];
        for (let j = 0; j < units; j++) {
          let r = 0;
          if (l === first) r = j === column ? (inKernel ? a[l][row] : 1) : 0;
          else for (let i = 0; i < inputs; i++) r += ra[l - 1][i] * kernel[i * units + j];
          rz[l][j] = r;
          ra[l][j] = d1[l][j] * r;
        }
      }
      for (let i = 0; i < outputs; i++) {
        let r = 0;
        for (let j = 0; j < outputs; j++) r += lossHessian[i * outputs + j] * ra[depth - 1][j];
        rOutGrad[depth - 1][i] = r;
      }
      // R-backward, accumulating R(gradient) into this direction's row.
      const target = rows.subarray(s * fullSize, (s + 1) * fullSize);
      for (let l = depth - 1; l >= 0; l--) {
        const { inputs, units, kernel, kernelOffset, biasOffset } = layers[l];
        const active = l >= first; // R(z) and R(a) are zero below the direction's layer
        for (let j = 0; j < units; j++) rdz[j] = (active ? d2[l][j] * rz[l][j] * outGrad[l][j] : 0) + d1[l][j] * rOutGrad[l][j];
        for (let i = 0; i < inputs; i++) {
          const rInput = l > first ? ra[l - 1][i] : 0;
          let back = 0;
          for (let j = 0; j < units; j++) {
            target[kernelOffset + i * units + j] += rInput * dz[l][j] + a[l][i] * rdz[j];
            back += kernel[i * units + j] * rdz[j];
          }
          if (l === first && inKernel && i === row) back += dz[l][column];
          if (l > 0) rOutGrad[l - 1][i] = back;
        }
        if (biasOffset >= 0) for (let j = 0; j < units; j++) target[biasOffset + j] += rdz[j];
      }
    }
  }

  // The batch mean, then l2 Σ W² of each regularised kernel: 2 l2 W in the gradient, 2 l2 on the diagonal.
  loss /= batch;
  for (let i = 0; i < fullSize; i++) gradient[i] /= batch;
  const l2Diagonal = new Float64Array(fullSize);
  for (const { l2, kernel, kernelOffset } of layers) {
    if (!l2) continue;
    for (let i = 0; i < kernel.length; i++) {
      loss += l2 * kernel[i] * kernel[i];
      gradient[kernelOffset + i] += 2 * l2 * kernel[i];
      l2Diagonal[kernelOffset + i] = 2 * l2;
    }
  }
  const hessian = new Float32Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = r; c < size; c++) {
      const value = rows[r * fullSize + fullIndex[c]] / batch + (r === c ? l2Diagonal[fullIndex[r]] : 0);
      hessian[r * size + c] = value;
      hessian[c * size + r] = value; // the same float32 on both sides
    }
  }
  const selectedGradient = Float32Array.from(fullIndex, (k) => gradient[k]);
  if (!Number.isFinite(Math.fround(loss)) || !selectedGradient.every(Number.isFinite) || !hessian.every(Number.isFinite)) return null;
  return {
    parameters: model.parameters,
    size,
    loss,
    gradient: selectedGradient,
    hessian,
    meta: { backend: 'js', dtype: 'float32', elapsedMs: performance.now() - started, method: 'rOperator' },
  };
}
