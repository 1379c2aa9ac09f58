import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/compute/index.js';
import { computeHessian } from '../src/hessian.js';
import { activationRule } from '../src/compute/activations/index.js';
import { lossRule } from '../src/compute/losses/index.js';
import { tf, type Tensor } from '../src/compute/tf.js';
import { fixtures, relativeError } from './helpers.js';

// Confident predictions (issue 7, point 9): where sigmoid or softmax round to 1 in float32, the
// loss, gradient and Hessian are tiny but not 0, and never NaN. References are float64 closed forms
// written here (sharing nothing with the engine) or the PyTorch float64 fixtures (test/fixtures).

beforeAll(async () => {
  await initBackend();
});

/** Smallest float32 normal: below it float32 keeps no relative precision, so values are compared absolutely. */
const FLOAT32_TINY = 1.2e-38;

function expectClose(actual: number, expected: number, what: string, tolerance = 1e-4) {
  expect(Number.isFinite(actual), `${what}: ${actual} is not finite`).toBe(true);
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(tolerance * Math.abs(expected) + FLOAT32_TINY);
}

// float64 references
const sigmoid64 = (x: number) => 1 / (1 + Math.exp(-x));
/** sigmoid'(x) = e^-|x| / (1 + e^-|x|)^2, exact at both ends. */
const sigmoidSlope64 = (x: number) => {
  const e = Math.exp(-Math.abs(x));
  return e / (1 + e) ** 2;
};
const softplus64 = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
const sech2 = (x: number) => 1 / Math.cosh(x) ** 2;
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

const ACTIVATIONS_64: Record<string, { value: (z: number) => number; d1: (z: number) => number; d2: (z: number) => number }> = {
  sigmoid: { value: sigmoid64, d1: sigmoidSlope64, d2: (z) => -sigmoidSlope64(z) * Math.tanh(z / 2) },
  softplus: { value: softplus64, d1: sigmoid64, d2: sigmoidSlope64 },
  tanh: { value: Math.tanh, d1: sech2, d2: (z) => -2 * Math.tanh(z) * sech2(z) },
  swish: {
    value: (z) => z * sigmoid64(z),
    d1: (z) => sigmoid64(z) + z * sigmoidSlope64(z),
    d2: (z) => sigmoidSlope64(z) * (2 - z * Math.tanh(z / 2)),
  },
  geluApproximate: {
    // 0.5 z (1 + tanh u) = z sigmoid(2u)
    value: (z) => z * sigmoid64(2 * GELU_C * (z + GELU_K * z ** 3)),
    d1: (z) => {
      const u = GELU_C * (z + GELU_K * z ** 3);
      return sigmoid64(2 * u) + 0.5 * z * sech2(u) * GELU_C * (1 + 3 * GELU_K * z * z);
    },
    d2: (z) => {
      const u = GELU_C * (z + GELU_K * z ** 3);
      const du = GELU_C * (1 + 3 * GELU_K * z * z);
      const ddu = GELU_C * 6 * GELU_K * z;
      const dt = sech2(u) * du;
      const ddt = -2 * Math.tanh(u) * sech2(u) * du * du + sech2(u) * ddu;
      return dt + 0.5 * z * ddt;
    },
  },
};

/** The activation rule's value, f' (from jvp of ones) and f'' (curvature along ones with g = 1). */
function activationDerivatives(name: string, z: number[]) {
  return tf.tidy(() => {
    const state = activationRule(name).apply(tf.tensor2d([z]), {}, <T extends Tensor>(t: T) => t);
    const ones = tf.ones([1, 1, z.length]) as never;
    const d1 = Array.from(state.jvp(ones).dataSync());
    state.backward(tf.ones([1, z.length]) as never);
    const d2 = Array.from(state.curvature(ones)!.dataSync());
    return { value: Array.from(state.output.dataSync()), d1, d2 };
  });
}

describe('activation derivatives at saturating arguments match float64 closed forms', () => {
  // Away from the roots of f' and f'' (swish, geluApproximate), where any float32 result is only absolutely close.
  const z = [-30, -20, -12, -5, -1, 0.3, 1, 5, 12, 20, 30];
  it.each(Object.keys(ACTIVATIONS_64))('%s', (name) => {
    const got = activationDerivatives(name, z);
    const want = ACTIVATIONS_64[name];
    z.forEach((v, i) => {
      expectClose(got.value[i], want.value(v), `${name}(${v})`);
      expectClose(got.d1[i], want.d1(v), `${name}'(${v})`);
      expectClose(got.d2[i], want.d2(v), `${name}''(${v})`);
    });
  });

  it('the confident ends are not 0 (1 - s would be): sigmoid\'\'(30), tanh\'(12), softplus\'\'(20)', () => {
    expect(activationDerivatives('sigmoid', [30]).d2[0]).toBeLessThan(-9e-14);
    expect(activationDerivatives('tanh', [12]).d1[0]).toBeGreaterThan(1.5e-10);
    expect(activationDerivatives('softplus', [20]).d2[0]).toBeGreaterThan(2e-9);
  });
});

/** One loss rule on one example: value, gradient and the Hessian times r, all for that example. */
function lossOnOneExample(name: string, logits: number[], target: number[], r: number[], fromLogits = true) {
  return tf.tidy(() => {
    const state = lossRule(name).apply(tf.tensor2d([logits]), tf.tensor2d([target]), { fromLogits }, <T extends Tensor>(t: T) => t);
    return {
      value: state.value,
      gradient: Array.from(state.gradient.dataSync()),
      hvp: Array.from(state.hvp(tf.tensor3d([[r]])).dataSync()),
    };
  });
}

describe('binaryCrossentropy from logits in stable forms', () => {
  // The figures: a = 25 (softplus(a) - y a and p (1 - p) cancelled to 0; true ~1.4e-11) and a = -40.
  const cases: [number, number][] = [
    [25, 1], [25, 0], [-40, 0], [-40, 1], [30, 1], [-30, 0], [17.5, 1], [0.5, 1], [-2, 0.3], [100, 1], [100, 0], [-100, 0],
  ];
  it.each(cases)('a = %d, y = %d', (a, y) => {
    const got = lossOnOneExample('binaryCrossentropy', [a], [y], [1]);
    expectClose(got.value, y * softplus64(-a) + (1 - y) * softplus64(a), 'loss');
    // d/da = sigmoid(a) - y, written so that no 1 - sigmoid appears in the reference either
    expectClose(got.gradient[0], y === 1 ? -sigmoid64(-a) : y === 0 ? sigmoid64(a) : sigmoid64(a) - y, 'gradient');
    expectClose(got.hvp[0], sigmoidSlope64(a), 'second derivative');
  });
});

describe('categorical cross-entropy from logits with a dominant logit', () => {
  /** float64: -log p_i = log1p(sum_{j != i} e^(a_j - a_i)); Y p_i - y_i and Y (diag p - p p^T) r with 1 - p_i as sum_{j != i} p_j. */
  function reference(a: number[], y: number[], r: number[]) {
    const max = Math.max(...a);
    const e = a.map((v) => Math.exp(v - max));
    const total = e.reduce((s, v) => s + v, 0);
    const p = e.map((v) => v / total);
    const others = (i: number, f: (j: number) => number) => a.reduce((s, _v, j) => (j === i ? s : s + f(j)), 0);
    const minusLogP = a.map((ai, i) => Math.log1p(others(i, (j) => Math.exp(a[j] - ai))));
    const mass = y.reduce((s, v) => s + v, 0);
    return {
      value: y.reduce((s, yi, i) => s + yi * minusLogP[i], 0),
      gradient: p.map((pi, i) => pi * others(i, (j) => y[j]) - y[i] * others(i, (j) => p[j])),
      hvp: p.map((pi, i) => mass * pi * others(i, (j) => p[j] * (r[i] - r[j]))),
    };
  }
  const r = [0.7, -1.3, 2.1];
  it.each([
    ['right, gap 30', [30, 0, -5], [1, 0, 0]],
    ['right, gap 25 in the middle', [0, 25, 1], [0, 1, 0]],
    ['wrong, gap 30', [30, 0, -5], [0, 1, 0]],
    ['the label\'s probability underflows float32 (e^-115)', [-3, 0, 112], [1, 0, 0]],
    ['soft targets', [1, 2, 3], [0.2, 0.3, 0.5]],
  ])('%s', (_name, a, y) => {
    const got = lossOnOneExample('categoricalCrossentropy', a, y, r);
    const want = reference(a, y, r);
    expectClose(got.value, want.value, 'loss');
    // Elements of the gradient and H r span 1e-13 .. 1: each is compared relatively, or to the float32 floor.
    want.gradient.forEach((g, i) => expectClose(got.gradient[i], g, `gradient[${i}]`));
    want.hvp.forEach((h, i) => expectClose(got.hvp[i], h, `(H r)[${i}]`));
  });
});

describe('confident predictions end to end against the PyTorch float64 fixtures', () => {
  const confident = fixtures().filter((c) => c.name.startsWith('confident_'));

  it('there are such fixtures (sigmoid+BCE at logit 30, BCE from logits at 25 and -40, softmax+CCE, sparse CCE, saturated hidden units)', () => {
    expect(confident.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'confident_sigmoid_bce_probs_logit_30',
        'confident_bce_logits_a25',
        'confident_bce_logits_a_minus40',
        'confident_softmax_cce_probs_dominant_logit',
        'confident_softmax_sparse_cce_probs_one_wrong',
      ]),
    );
  });

  // The fixture suite compares the loss to max(1, |loss|); here a tiny loss must be right relatively too.
  it.each(confident.map((c) => [c.name, c] as const))('%s: loss, gradient and Hessian to 1e-4 relative', async (_name, { request, expected }) => {
    const result = await computeHessian(request);
    expect(Math.abs(result.loss - expected.loss) / Math.abs(expected.loss)).toBeLessThan(1e-4);
    expect(relativeError(result.gradient, expected.gradient)).toBeLessThan(1e-4);
    expect(relativeError(result.hessian!, expected.hessian.flat())).toBeLessThan(1e-4);
  });

  it('sigmoid + BCE at logit 30: the Hessian is tiny (~1e-13), not 0 and not NaN', async () => {
    const { request, expected } = fixtures().find((c) => c.name === 'confident_sigmoid_bce_probs_logit_30')!;
    const largest = Math.max(...expected.hessian.flat().map(Math.abs));
    expect(largest).toBeGreaterThan(1e-15);
    expect(largest).toBeLessThan(1e-11);
    const result = await computeHessian(request);
    expect(Math.max(...Array.from(result.hessian!, Math.abs))).toBeGreaterThan(largest / 2);
  });
});

describe('logits far beyond float32 (100): finite and right where float32 can say it', () => {
  /** One sigmoid unit z = w x (x = 1) under binaryCrossentropy on probabilities. */
  const sigmoidUnit = (w: number, y: number) => ({
    model: { inputShape: [1], layers: [{ type: 'dense', units: 1, activation: 'sigmoid', useBias: false, kernel: [[w]] }] },
    loss: 'binaryCrossentropy',
    data: { x: [[1]], y: [[y]] },
  });

  it('right at logit 100: loss, gradient and Hessian are e^-100 (float32: subnormal or 0)', async () => {
    const result = await computeHessian(sigmoidUnit(100, 1));
    expectClose(result.loss, Math.exp(-100), 'loss');
    expectClose(result.gradient[0], -Math.exp(-100), 'gradient');
    expectClose(result.hessian![0], Math.exp(-100), 'Hessian');
  });

  it('wrong at logit 100: loss 100, gradient 1, Hessian e^-100', async () => {
    const result = await computeHessian(sigmoidUnit(100, 0));
    expectClose(result.loss, 100, 'loss', 1e-6);
    expectClose(result.gradient[0], 1, 'gradient', 1e-6);
    expectClose(result.hessian![0], Math.exp(-100), 'Hessian');
  });

  it('softmax output, the label on a class 150 below the top: loss 150, gradient e_top - e_label', async () => {
    const result = await computeHessian({
      model: { inputShape: [1], layers: [{ type: 'dense', units: 3, activation: 'softmax', useBias: true, kernel: [[0, 0, 0]], bias: [150, 0, -1] }] },
      loss: 'sparseCategoricalCrossentropy',
      data: { x: [[1]], y: [1] },
    });
    expectClose(result.loss, 150, 'loss', 1e-6);
    // parameters: kernel [1x3] (x = 1), bias [3]: dL/db = p - onehot(1) = [1, -1, 0] up to e^-150
    expect(result.gradient.length).toBe(6);
    [1, -1, 0, 1, -1, 0].forEach((g, i) => expectClose(result.gradient[i], g, `gradient[${i}]`, 1e-6));
    expect(Array.from(result.hessian!).every(Number.isFinite)).toBe(true);
  });
});
