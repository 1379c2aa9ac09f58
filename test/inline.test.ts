/**
 * The inline path (compute/inline, issue 10 point 5): tiny dense stacks in plain JavaScript float64.
 * Every fixture case it takes is checked against its float64 PyTorch reference (test/fixtures), and
 * random models over every activation and loss it has a float64 form of against the TF.js engine; the
 * ones it cannot take, and requests over its cost bound, are left to the engine (null).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ACTIVATIONS } from '../src/compute/activations/index.js';
import { initBackend, inlineHessian, inlineModel } from '../src/compute/index.js';
import { LOSSES } from '../src/compute/losses/index.js';
import { computeHessian, parseEngineRequest } from '../src/hessian.js';
import { mulberry32 } from '../src/compute/initializers.js';
import { fixtures, relativeError } from './helpers.js';

const TOLERANCE = 1e-4;
/** Activations with no float64 form: gelu (no erf in JavaScript) and softmax (not element-wise). */
const NOT_INLINE = ['gelu', 'softmax'];

beforeAll(async () => {
  await initBackend();
});

describe.each(fixtures())('$name', ({ request, expected }) => {
  const activations = request.model.layers.map((layer: any) => (typeof layer.activation === 'string' ? layer.activation : layer.activation.type));
  // A softmax output layer under a cross-entropy is fused into the loss, so only a hidden softmax is out.
  const hidden = activations.slice(0, -1);
  const outside = hidden.some((name: string) => NOT_INLINE.includes(name)) || activations.at(-1) === 'gelu' || (activations.at(-1) === 'softmax' && !/crossentropy/i.test(JSON.stringify(request.loss)));
  it(outside ? 'is left to the engine' : 'matches the float64 reference: parameters, loss, gradient and Hessian', () => {
    const model = inlineModel(parseEngineRequest(request), Infinity);
    if (outside) return void expect(model).toBeNull();
    const result = inlineHessian(model!)!;
    expect(result.meta).toMatchObject({ backend: 'js', dtype: 'float32', method: 'rOperator' });
    expect(result.parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size }))).toEqual(expected.parameters);
    expect(result.size).toBe(expected.gradient.length);
    expect(Math.abs(result.loss - expected.loss) / Math.max(1, Math.abs(expected.loss))).toBeLessThan(TOLERANCE);
    expect(relativeError(result.gradient, expected.gradient)).toBeLessThan(TOLERANCE);
    expect(relativeError(result.hessian, expected.hessian.flat())).toBeLessThan(TOLERANCE);
    for (let r = 0; r < result.size; r++) for (let c = 0; c < r; c++) expect(result.hessian[r * result.size + c]).toBe(result.hessian[c * result.size + r]);
  });
});

/** A random 3-4-3 model (kernels and biases given, l2 on the first kernel) with `hidden` and `output` activations under `loss`. */
function randomRequest(hidden: string, output: string, loss: string, fromLogits: boolean, seed: number) {
  const random = mulberry32(seed);
  const uniform = () => random() * 2 - 1;
  const matrix = (rows: number, columns: number) => Array.from({ length: rows }, () => Array.from({ length: columns }, uniform));
  const batch = 5;
  const labels = Array.from({ length: batch }, (_, b) => [b % 3]);
  const targets =
    loss === 'binaryCrossentropy' ? matrix(batch, 3).map((row) => row.map((v) => (v > 0 ? 1 : 0))) : loss === 'categoricalCrossentropy' ? labels.map(([c]) => [0, 1, 2].map((k) => (k === c ? 1 : 0))) : matrix(batch, 3);
  return {
    model: {
      inputShape: [3],
      layers: [
        { type: 'dense', units: 4, activation: hidden, kernel: matrix(3, 4), bias: matrix(1, 4)[0], kernelRegularizer: { l2: 0.03 } },
        { type: 'dense', units: 3, activation: output, kernel: matrix(4, 3), bias: matrix(1, 3)[0] },
      ],
    },
    loss: ['binaryCrossentropy', 'categoricalCrossentropy', 'sparseCategoricalCrossentropy'].includes(loss) ? { type: loss, fromLogits } : { type: loss },
    data: { x: matrix(batch, 3), y: loss === 'sparseCategoricalCrossentropy' ? labels : targets },
  };
}

describe('random models against the TF.js engine', () => {
  const hiddenActivations = ACTIVATIONS.map((rule) => rule.name).filter((name) => !NOT_INLINE.includes(name));
  const losses = LOSSES.map((rule) => rule.name);
  it.each(losses)('every float64 activation under %s', async (loss) => {
    const cross = /crossentropy/i.test(loss);
    let seed = 1;
    for (const hidden of hiddenActivations) {
      // Cross-entropies take logits (a linear output), or the probabilities of their own output activation (fused).
      const variants: [string, boolean][] = cross ? [['linear', true], [loss === 'binaryCrossentropy' ? 'sigmoid' : 'softmax', false]] : [['linear', false], [hidden, false]];
      for (const [output, fromLogits] of variants) {
        const body = randomRequest(hidden, output, loss, fromLogits, seed++);
        const model = inlineModel(parseEngineRequest(body), Infinity);
        expect(model, `${hidden} -> ${output}, ${loss}`).not.toBeNull();
        const inline = inlineHessian(model!)!;
        const engine = await computeHessian(body);
        const what = `${hidden} -> ${output}, ${loss}${fromLogits ? ' from logits' : ''}`;
        expect(Math.abs(inline.loss - engine.loss) / Math.max(1, Math.abs(engine.loss)), what).toBeLessThan(TOLERANCE);
        expect(relativeError(inline.gradient, engine.gradient), what).toBeLessThan(TOLERANCE);
        expect(relativeError(inline.hessian, engine.hessian!), what).toBeLessThan(TOLERANCE);
      }
    }
  });
});

describe('what it does not take', () => {
  const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!.request;
  it('a request over the cost bound, decided before any copy', () => {
    const request = parseEngineRequest(seed);
    const model = inlineModel(request, Infinity)!;
    expect(model.flops).toBeGreaterThan(0);
    expect(inlineModel(request, model.flops)).not.toBeNull();
    expect(inlineModel(request, model.flops - 1)).toBeNull();
  });
  it('a model that is not a dense stack, kernels drawn from the seed, and labels out of range', async () => {
    const drawn = { ...seed, model: { inputShape: [2], seed: 5, layers: [{ type: 'dense', units: 2, activation: 'tanh' }] } };
    const inline = inlineHessian(inlineModel(parseEngineRequest(drawn), Infinity)!)!;
    const engine = await computeHessian(drawn);
    expect(relativeError(inline.hessian, engine.hessian!)).toBeLessThan(TOLERANCE); // the same seeded kernel
    const graph = { ...seed, model: { inputShape: [2], layers: [{ type: 'dense', units: 2, useBias: false, kernel: [[1, 2], [3, 4]] }, { type: 'dropout', rate: 0.5 }] } };
    expect(inlineModel(parseEngineRequest(graph), Infinity)).toBeNull();
  });
  it('a non-finite answer (the engine reports the error)', () => {
    const overflow = { model: { inputShape: [1], layers: [{ type: 'dense', units: 1, useBias: false, kernel: [[1e19]], kernelRegularizer: { l2: 100 } }] }, loss: 'meanSquaredError', data: { x: [[0]], y: [[0]] } };
    expect(inlineHessian(inlineModel(parseEngineRequest(overflow), Infinity)!)).toBeNull();
  });
});
