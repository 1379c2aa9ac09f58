/**
 * The structured assembly (compute/assembly) against independent references: every float64 PyTorch
 * fixture through both paths explicitly, and the R-operator path on random models covering
 * every activation (hidden softmax too) and loss, `wrt` subsets in any order, and l2.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ACTIVATIONS } from '../src/compute/activations/index.js';
import { costShape, DEFAULT_MEMORY_BUDGET_BYTES, initBackend, NumericalError, planHessian, planRowBlocks, PreparedModel, rowSource, symmetricColumns, type RowBlock } from '../src/compute/index.js';
import { computeHessian, parseRequest } from '../src/hessian.js';
import { allParameters } from '../src/compute/parameters.js';
import { fixtures, relativeError } from './helpers.js';
import { tf } from '../src/compute/tf.js';

const TOLERANCE = 1e-4;

beforeAll(async () => {
  await initBackend();
});

// The default path is structured for every fixture (fixture-suite.ts runs them on each backend); both
// paths explicitly here.
describe.each(fixtures())('both paths: $name', ({ request, expected }) => {
  it.each(['structured', 'rOperator'] as const)('%s matches the float64 reference', async (method) => {
    const result = await computeHessian(request, { method });
    expect(result.meta.method).toBe(method);
    expect(relativeError(result.gradient, expected.gradient)).toBeLessThan(TOLERANCE);
    expect(relativeError(result.hessian!, expected.hessian.flat())).toBeLessThan(TOLERANCE);
  });
});

/** A deterministic generator in [-1, 1). */
function generator(seed: number) {
  let state = seed;
  return () => ((state = (state * 16807) % 2147483647) / 2147483647) * 2 - 1;
}

type LossCase = { loss: unknown; last: string; targets: 'regression' | 'onehot' | 'labels' | 'binary' };
const LOSS_CASES: LossCase[] = [
  { loss: 'meanSquaredError', last: 'linear', targets: 'regression' },
  { loss: 'meanAbsoluteError', last: 'tanh', targets: 'regression' },
  { loss: { type: 'huber', delta: 0.3 }, last: 'linear', targets: 'regression' },
  { loss: { type: 'categoricalCrossentropy', fromLogits: true }, last: 'linear', targets: 'onehot' },
  { loss: 'categoricalCrossentropy', last: 'softmax', targets: 'onehot' },
  { loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true }, last: 'linear', targets: 'labels' },
  { loss: 'sparseCategoricalCrossentropy', last: 'softmax', targets: 'labels' },
  { loss: { type: 'binaryCrossentropy', fromLogits: true }, last: 'linear', targets: 'binary' },
  { loss: 'binaryCrossentropy', last: 'sigmoid', targets: 'binary' },
];
const ACTIVATION_NAMES = ACTIVATIONS.map((a) => a.name);

/** A random 3-layer stack (inputs 3, hidden 5 and 4, outputs 3) with two hidden activations and a loss. */
function randomRequest(seed: number, hidden: [string, string], lossCase: LossCase, options: { l2?: boolean; wrt?: boolean; noBias?: boolean } = {}) {
  const random = generator(seed);
  const sizes = [3, 5, 4, 3];
  const batch = 7;
  const activations = [...hidden, lossCase.last];
  const model = {
    inputShape: [sizes[0]],
    layers: sizes.slice(1).map((units, l) => ({
      type: 'dense',
      units,
      activation: activations[l],
      useBias: !(options.noBias && l === 1),
      kernel: Array.from({ length: sizes[l] }, () => Array.from({ length: units }, () => random() * 0.9)),
      ...(options.noBias && l === 1 ? {} : { bias: Array.from({ length: units }, () => random() * 0.3) }),
      ...(options.l2 && l !== 1 ? { kernelRegularizer: { l2: 0.05 * (l + 1) } } : {}),
    })),
  };
  const x = Array.from({ length: batch }, () => Array.from({ length: sizes[0] }, () => random() * 1.5));
  const classes = sizes[3];
  const y = Array.from({ length: batch }, (_, b) => {
    switch (lossCase.targets) {
      case 'regression':
        return Array.from({ length: classes }, () => random());
      case 'onehot':
        return Array.from({ length: classes }, (_, c) => (c === b % classes ? 1 : 0));
      case 'labels':
        return b % classes;
      case 'binary':
        return Array.from({ length: classes }, () => (random() + 1) / 2);
    }
  });
  const request: any = { model, loss: lossCase.loss, data: { x, y } };
  if (options.wrt) {
    // a shuffled subset of the tensors: out of order, layers skipped
    const names = allParameters(parseRequest(request).model).map((t) => t.name);
    request.wrt = names.filter((_, i) => (i + seed) % 3 !== 0).reverse();
  }
  return request;
}

const cases: { name: string; request: unknown }[] = [];
ACTIVATION_NAMES.forEach((activation, i) => {
  const next = ACTIVATION_NAMES[(i + 5) % ACTIVATION_NAMES.length];
  const lossCase = LOSS_CASES[i % LOSS_CASES.length];
  cases.push({ name: `${activation} then ${next}, ${JSON.stringify(lossCase.loss)}`, request: randomRequest(100 + i, [activation, next], lossCase) });
});
LOSS_CASES.forEach((lossCase, i) => {
  const hidden: [string, string] = i % 2 ? ['softmax', 'gelu'] : ['tanh', 'elu'];
  cases.push({ name: `${JSON.stringify(lossCase.loss)} with ${hidden.join(', ')}, l2, wrt subset`, request: randomRequest(200 + i, hidden, lossCase, { l2: true, wrt: true }) });
  cases.push({ name: `${JSON.stringify(lossCase.loss)} with sigmoid, swish, l2, a layer without bias`, request: randomRequest(300 + i, ['sigmoid', 'swish'], lossCase, { l2: true, noBias: true }) });
});

describe.each(cases)('structured vs R-operator: $name', ({ request }) => {
  it('gives the same full matrix', async () => {
    const structured = await computeHessian(request, { method: 'structured' });
    const rOperator = await computeHessian(request, { method: 'rOperator' });
    expect(rOperator.meta.method).toBe('rOperator');
    expect(Math.max(...rOperator.hessian!.map(Math.abs))).toBeGreaterThan(0); // a case that can fail
    expect(relativeError(structured.hessian!, rOperator.hessian!)).toBeLessThan(TOLERANCE);
  });

  it('gives the same matrix from upper-only rows in blocks of any size, filled by symmetry as the jobs do', () => {
    const model = new PreparedModel(parseRequest(request));
    const structured = rowSource(model, 'structured');
    const rOperator = rowSource(model, 'rOperator');
    const size = model.size;
    try {
      const reference = new Float32Array(size * size);
      for (const block of planRowBlocks(model.parameters, size, false)) reference.set(rOperator.rows(block, false), block.row * size);
      for (const [blockSize, wholeRows] of [[1, false], [3, false], [7, false], [4, true], [9, true]] as const) {
        for (const method of ['structured', 'rOperator'] as const) {
          const source = method === 'structured' ? structured : rOperator;
          // As JobManager.computeRows: layer by layer, each block's left-out columns copied from the rows before it.
          const blocks = planRowBlocks(model.parameters, blockSize, wholeRows);
          const layerOf = (b: RowBlock) => model.parameters[b.tensor].layer;
          const matrix = new Float32Array(size * size).fill(NaN);
          for (const block of [...blocks].sort((a, b) => layerOf(a) - layerOf(b) || a.row - b.row)) {
            const rows = source.rows(block, true);
            for (const span of symmetricColumns(model.parameters, block, method)) {
              for (let column = span.offset; column < span.offset + span.count; column++) {
                for (let d = 0; d < block.count; d++) rows[d * size + column] = matrix[column * size + block.row + d]; // NaN if not yet computed
              }
            }
            matrix.set(rows, block.row * size);
          }
          expect(relativeError(matrix, reference)).toBeLessThan(TOLERANCE);
        }
      }
    } finally {
      structured.dispose();
      rOperator.dispose();
      model.dispose();
    }
  });

  it('gives the same matrix over batch chunks (3, 3 and 1 of the 7 examples), full rows and upper-only', () => {
    const model = new PreparedModel(parseRequest(request));
    const chunked = rowSource(model, 'structured', 3);
    const rOperator = rowSource(model, 'rOperator');
    try {
      for (const block of planRowBlocks(model.parameters, 4, true)) {
        expect(relativeError(chunked.rows(block, false), rOperator.rows(block, false))).toBeLessThan(TOLERANCE);
        const upper = chunked.rows(block, true);
        const reference = rOperator.rows(block, false);
        const spans = symmetricColumns(model.parameters, block, 'structured');
        for (const span of spans) for (let c = span.offset; c < span.offset + span.count; c++) for (let d = 0; d < block.count; d++) reference[d * model.size + c] = 0;
        expect(relativeError(upper, reference)).toBeLessThan(TOLERANCE);
      }
    } finally {
      chunked.dispose();
      rOperator.dispose();
      model.dispose();
    }
  });

  it('leaves at 0 exactly the columns symmetricColumns names, for the caller to fill', () => {
    const model = new PreparedModel(parseRequest(request));
    const structured = rowSource(model, 'structured');
    const size = model.size;
    try {
      for (const block of planRowBlocks(model.parameters, 4, true)) {
        const rows = structured.rows(block, true);
        const spans = symmetricColumns(model.parameters, block, 'structured');
        for (let column = 0; column < size; column++) {
          if (!spans.some((s) => column >= s.offset && column < s.offset + s.count)) continue;
          for (let d = 0; d < block.count; d++) expect(rows[d * size + column]).toBe(0);
        }
      }
    } finally {
      structured.dispose();
      model.dispose();
    }
  });
});

describe('path selection', () => {
  it('picks the structured path for dense stacks and says so', async () => {
    const result = await computeHessian(cases[0].request);
    expect(result.meta.method).toBe('structured');
  });
});

describe('path planning from sizes (planHessian)', () => {
  const requestFor = (sizes: number[], batch: number) =>
    parseRequest({
      model: { inputShape: [sizes[0]], seed: 1, layers: sizes.slice(1).map((units) => ({ type: 'dense', units })) },
      loss: 'meanSquaredError',
      data: { x: Array.from({ length: batch }, () => new Array(sizes[0]).fill(0.5)), y: Array.from({ length: batch }, () => new Array(sizes.at(-1)!).fill(0)) },
    });
  const shape = (sizes: number[], batch: number) => costShape(requestFor(sizes, batch));

  it('takes the structured path for the benchmark MLPs within the budget, in blocks of whole kernel rows', () => {
    for (const sizes of [[20, 64, 64, 10], [40, 128, 100, 10]]) {
      const plan = planHessian(shape(sizes, 256), DEFAULT_MEMORY_BUDGET_BYTES);
      const tensors = allParameters(requestFor(sizes, 256).model);
      expect(plan.method).toBe('structured');
      expect(plan.peakBytes).toBeLessThanOrEqual(DEFAULT_MEMORY_BUDGET_BYTES);
      for (const block of planRowBlocks(tensors, plan.blockSize, true)) {
        const tensor = tensors[block.tensor];
        if (tensor.kind === 'kernel') expect([block.start % tensor.shape[1], block.count % tensor.shape[1]]).toEqual([0, 0]);
        expect(block.count).toBeLessThanOrEqual(Math.max(plan.blockSize, tensor.shape.at(-1)!));
      }
    }
  });

  it('falls back to the R-operator when even one example\'s factors do not fit, and can be forced either way', () => {
    const wide = shape([8, 3000, 4], 512); // a sweep of one example alone holds about 10 * 3000 * 6000 floats
    const budget = 256 * 2 ** 20;
    expect(planHessian(wide, budget).method).toBe('rOperator');
    expect(planHessian(wide, budget, 'structured').method).toBe('structured');
    expect(planHessian(shape([20, 64, 64, 10], 256), budget, 'rOperator').method).toBe('rOperator');
  });

  it('computes the factors over chunks of the batch when the whole batch\'s do not fit', () => {
    const wide = shape([8, 200, 4], 2048); // factors of about B * 200 * (200 + ...) floats, 330 MB for the whole batch
    const budget = 256 * 2 ** 20;
    const plan = planHessian(wide, budget);
    expect(plan.method).toBe('structured');
    expect(plan.batchChunk).toBeLessThan(2048);
    expect(plan.peakBytes).toBeLessThanOrEqual(budget);
    expect(planHessian(shape([20, 64, 64, 10], 256), DEFAULT_MEMORY_BUDGET_BYTES).batchChunk).toBeUndefined();
  });

  it('over batch chunks, its memory estimate bounds the measured peak of a task (within a factor of 4) and the matrix is the whole batch\'s', async () => {
    const random = generator(7);
    const sizes = [6, 40, 30, 5];
    const request = parseRequest({
      model: { inputShape: [sizes[0]], seed: 3, layers: sizes.slice(1).map((units, l) => ({ type: 'dense', units, activation: l < 2 ? 'tanh' : 'linear' })) },
      loss: { type: 'categoricalCrossentropy', fromLogits: true },
      data: { x: Array.from({ length: 300 }, () => Array.from({ length: sizes[0] }, random)), y: Array.from({ length: 300 }, (_, b) => Array.from({ length: 5 }, (_, c) => (c === b % 5 ? 1 : 0))) },
    });
    const whole = planHessian(costShape(request), DEFAULT_MEMORY_BUDGET_BYTES);
    const budget = Math.floor(whole.peakBytes / 2);
    const plan = planHessian(costShape(request), budget);
    expect(plan.method).toBe('structured');
    expect(plan.batchChunk).toBeLessThan(300);
    let model: PreparedModel | null = null;
    let chunked: ReturnType<typeof rowSource> | null = null;
    let worst = (await tf.profile(() => void (chunked = rowSource((model = new PreparedModel(request)), 'structured', plan.batchChunk)))).peakBytes;
    const reference = rowSource(model!, 'structured');
    try {
      for (const block of planRowBlocks(model!.parameters, plan.blockSize, true)) {
        let rows: Float32Array = new Float32Array(0);
        const info = await tf.profile(() => void (rows = chunked!.rows(block, true)));
        worst = Math.max(worst, info.peakBytes + rows.byteLength);
        expect(relativeError(rows, reference.rows(block, true))).toBeLessThan(TOLERANCE);
      }
    } finally {
      chunked!.dispose();
      reference.dispose();
      model!.dispose();
    }
    expect(plan.peakBytes).toBeGreaterThanOrEqual(worst);
    expect(plan.peakBytes).toBeLessThan(4 * worst);
  });
});

describe('finiteness of the structured rows', () => {
  /** One linear unit without bias, MSE, zero kernel and target: loss 0, gradient 0, H = 2 x x^T. */
  const outerProduct = (value: number) => ({
    model: { inputShape: [20], layers: [{ type: 'dense', units: 1, useBias: false, activation: 'linear', kernel: Array.from({ length: 20 }, () => [0]) }] },
    loss: 'meanSquaredError',
    data: { x: [new Array(20).fill(value)], y: [[0]] },
  });

  it('gives the matrix when its values are finite but their float32 sum is not', async () => {
    const result = await computeHessian(outerProduct(1.5e18), { method: 'structured' });
    // every entry 2 * (1.5e18)^2 = 4.5e36; the 400 of them sum to 1.8e39, beyond float32
    expect(relativeError(result.hessian!, new Float32Array(400).fill(4.5e36))).toBeLessThan(TOLERANCE);
  });

  it('is a NumericalError when a value overflows float32', async () => {
    await expect(computeHessian(outerProduct(1e20), { method: 'structured' })).rejects.toBeInstanceOf(NumericalError);
    await expect(computeHessian(outerProduct(1e20), { method: 'rOperator' })).rejects.toBeInstanceOf(NumericalError);
  });
});
