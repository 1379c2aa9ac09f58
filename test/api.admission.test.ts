/**
 * Admission by cost (issue 7, points 1 and 5): the hostile bodies are refused by estimate
 * before anything is allocated, with a 413 that gives the estimate and the limit; the 3000 x 3000
 * layer whose old plan needed a 17 GiB product is computed within the memory budget; a loss that
 * overflows float32 is a 422, never Infinity in JSON; every benchmark case is admitted.
 */
import { describe, expect, it } from 'vitest';
import { costShape, estimateCost, planHessian } from '../src/compute/index.js';
import { computeHessian, parseEngineRequest, parseRequest } from '../src/hessian.js';
import { loadConfig } from '../src/config.js';
import { admit } from '../src/routes/hessian.js';
import { decodeFloat32LE, expectJsonMatchesFixture, finishedJob, mlpRequest, rawBody, rng, useApp } from './api-helpers.js';
import { fixtures, relativeError } from './helpers.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const t = useApp();

/** The compute bomb: P = 20000 through `wrt` on a 10,000-unit layer, batch 256, 4 KB of data. */
function computeBomb() {
  const random = rng(3);
  return {
    model: {
      inputShape: [2],
      seed: 1,
      layers: [
        { type: 'dense', units: 10000, activation: 'tanh' },
        { type: 'dense', units: 900, activation: 'tanh' },
        { type: 'dense', units: 10 },
      ],
    },
    loss: 'sparseCategoricalCrossentropy',
    data: { x: Array.from({ length: 256 }, () => [random(), random()]), y: Array.from({ length: 256 }, (_, b) => b % 10) },
    wrt: ['dense_1/kernel'],
  };
}

/** 1 -> 1 -> 524288 units, 2048 rows: a [2048, 524288] tensor, 4 GiB, more than a wasm heap can address. */
function wasmTrapBody() {
  return {
    model: { inputShape: [1], seed: 1, layers: [{ type: 'dense', units: 1 }, { type: 'dense', units: 524288 }] },
    loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true },
    data: { x: Array.from({ length: 2048 }, (_, b) => [b / 2048]), y: Array.from({ length: 2048 }, (_, b) => b) },
    wrt: ['dense_1/kernel'],
  };
}

/** 1e5 rows into 5000 softmax units (about 1 MB): tens of GB of activations. */
function outOfMemoryBody() {
  return {
    model: { inputShape: [1], seed: 1, layers: [{ type: 'dense', units: 5000, activation: 'softmax' }] },
    loss: 'sparseCategoricalCrossentropy',
    data: { x: Array.from({ length: 100_000 }, (_, b) => [(b % 7) / 7]), y: Array.from({ length: 100_000 }, (_, b) => b % 5000) },
  };
}

describe('refused by estimate, before allocation', () => {
  it('the compute bomb: 413 over_compute_budget with the estimate and MAX_JOB_FLOPS, on both endpoints', async () => {
    for (const url of ['/v1/hessian', '/v1/jobs']) {
      const res = await t.http().post(url).send(computeBomb());
      expect(res.status).toBe(413);
      expect(res.body.error).toBe('over_compute_budget');
      expect(res.body.message).toMatch(/about \d\.\d\de\+14 floating-point operations \(P = 20000, batch 256\); the limit MAX_JOB_FLOPS is 1\.00e\+13/);
    }
  });

  it.each([
    ['the 20 KB body that trapped the wasm heap', wasmTrapBody],
    ['the 1 MB out-of-memory body', outOfMemoryBody],
  ])('%s: 413 over_memory_budget with the estimate and MAX_WORKER_MEMORY_MB', async (_name, body) => {
    const res = await t.http().post('/v1/hessian').send(body());
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('over_memory_budget');
    const estimate = Number(/about ([\d.]+) GiB/.exec(res.body.message)![1]);
    expect(estimate).toBeGreaterThan(2);
    expect(res.body.message).toMatch(/the limit MAX_WORKER_MEMORY_MB is 2048 MiB/);
  });

  it('after those, the service still answers the seed case correctly', async () => {
    const res = await t.http().post('/v1/hessian').send(seed.request);
    expect(res.status).toBe(200);
    expectJsonMatchesFixture(res.body, seed);
  });
});

describe('computed within the budget', () => {
  // A small worker budget, so that the block size is chosen by memory.
  const small = useApp({ MAX_WORKER_MEMORY_MB: 64 });
  // The case is 3000 x 3000 under 2048 MiB (test/cost.test.ts checks that plan); here it is
  // scaled to 1000 x 1000 under 64 MiB, where the old plan (K = 512) would also have needed 4 GiB.
  it('a 1000x1000 layer, wrt dense_1/bias, batch 1: the Hessian 2/m I of MSE over the bias, with a block that fits', async () => {
    const m = 1000;
    const random = rng(5);
    const body = {
      model: { inputShape: [m], seed: 2, layers: [{ type: 'dense', units: m }] },
      loss: 'meanSquaredError',
      data: { x: [Array.from({ length: m }, () => random() - 0.5)], y: [Array.from({ length: m }, () => random())] },
      wrt: ['dense_1/bias'],
    };
    const budget = small.config.MAX_WORKER_MEMORY_MB * 2 ** 20;
    const plan = estimateCost(costShape(parseRequest(body)), budget);
    expect(plan.peakBytes).toBeLessThanOrEqual(budget);
    expect(plan.blockSize).toBeLessThan(512);
    expect(estimateCost(costShape(parseRequest(body)), Infinity).peakBytes).toBeGreaterThan(3.5 * 2 ** 30);
    const res = await small.http().post('/v1/hessian').set('accept', 'application/octet-stream').buffer(true).parse(rawBody).send(body);
    expect(res.status).toBe(200);
    const values = decodeFloat32LE(res.body);
    expect(values.length).toBe(m * m);
    // L = mean_j (z_j - y_j)^2 with z = x W + b: d2L/db_j db_k = 2/m [j = k], whatever W and x are.
    let worst = 0;
    for (let j = 0; j < m; j++) for (let k = 0; k < m; k++) worst = Math.max(worst, Math.abs(values[j * m + k] - (j === k ? 2 / m : 0)));
    expect(worst).toBeLessThan(1e-4 * (2 / m));
  });
});

describe('a batch whose structured factors do not fit at once', () => {
  const small = useApp({ MAX_WORKER_MEMORY_MB: 64 });
  it('a job computes them over chunks of the batch, within MAX_WORKER_MEMORY_MB, and its matrix is the whole batch\'s', async () => {
    const body = mlpRequest([4, 50, 50, 3], 800);
    const budget = small.config.MAX_WORKER_MEMORY_MB * 2 ** 20;
    const plan = planHessian(costShape(parseRequest(body)), budget);
    expect(plan.method).toBe('structured');
    expect(plan.batchChunk).toBeLessThan(800);
    expect(plan.peakBytes).toBeLessThanOrEqual(budget);
    expect(planHessian(costShape(parseRequest(body)), Infinity).peakBytes).toBeGreaterThan(budget); // the whole batch's factors
    const job = await finishedJob(small, body);
    expect(job.status).toBe('succeeded');
    const result = await small.http().get(`/v1/jobs/${job.id}/result`).set('accept', 'application/octet-stream').buffer(true).parse(rawBody);
    expect(result.status).toBe(200);
    const reference = await computeHessian(body, { method: 'structured' }); // the whole batch at once, in this process
    expect(relativeError(decodeFloat32LE(result.body), reference.hessian!)).toBeLessThan(1e-4);
  });
});

describe('always valid output', () => {
  it('a loss finite in float64 but Infinity in float32 is a 422 naming the loss, and the body is strict JSON', async () => {
    const body = {
      model: { inputShape: [1], layers: [{ type: 'dense', units: 1, useBias: false, kernel: [[1e19]], kernelRegularizer: { l2: 100 } }] },
      loss: 'meanSquaredError',
      data: { x: [[0]], y: [[0]] },
    };
    const res = await t.http().post('/v1/hessian').buffer(true).parse(rawBody).send(body);
    expect(res.status).toBe(422);
    const text = res.body.toString('utf8');
    expect(text).not.toMatch(/Infinity|NaN/);
    const parsed = JSON.parse(text);
    expect(parsed.error).toBe('numerical_error');
    expect(parsed.message).toMatch(/the loss is [\d.]+e\+39, beyond float32's range/);
  });
});

describe('every README and benchmark case is admitted with the default limits', () => {
  it.each([
    [[10, 32, 32, 3], 256],
    [[20, 64, 64, 10], 256],
    [[25, 92, 92, 10], 256],
    [[40, 128, 100, 10], 256],
    [[20, 64, 64, 10], 4096],
  ])('MLP %j, batch %i', (sizes, batch) => {
    const cost = admit(parseEngineRequest(mlpRequest(sizes, batch)), loadConfig({}));
    expect(cost.blockSize).toBeGreaterThan(1);
  });

  it('every fixture', () => {
    for (const c of fixtures()) expect(() => admit(parseEngineRequest(c.request), loadConfig({}))).not.toThrow();
  });
});
