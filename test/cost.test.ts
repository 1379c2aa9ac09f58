/**
 * The cost estimator (src/compute/cost.ts) against what the engine really does: TF.js's own count of
 * the bytes its tensors hold at the peak of a task (tf.profile) and the multiply-adds of every matMul
 * kernel it ran, on models of several shapes, activations and `wrt` selections.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  costShape,
  estimateCost,
  hessianRows,
  initBackend,
  planRowBlocks,
  PreparedModel,
} from '../src/compute/index.js';
import { parseRequest } from '../src/hessian.js';
import { tf } from '../src/compute/tf.js';
import { mlpRequest } from './api-helpers.js';
import { fixtures } from './helpers.js';

beforeAll(async () => {
  await initBackend();
});

const MiB = 2 ** 20;

/** An MLP request with the given hidden activation and loss, weights from the seed. */
function request(sizes: number[], batch: number, options: { activation?: string; wrt?: string[] } = {}) {
  const body: any = mlpRequest(sizes, batch);
  if (options.activation) for (const layer of body.model.layers.slice(0, -1)) layer.activation = options.activation;
  if (options.wrt) body.wrt = options.wrt;
  return body;
}

const CASES: [string, any][] = [
  ['tanh 8-32-24-5, batch 64', request([8, 32, 24, 5], 64)],
  ['softmax hidden 6-40-30-4, batch 48', request([6, 40, 30, 4], 48, { activation: 'softmax' })],
  ['geluApproximate 10-64-3, batch 128', request([10, 64, 3], 128, { activation: 'geluApproximate' })],
  ['wide 3-300-2, batch 16, wrt dense_1/bias only', request([3, 300, 2], 16, { wrt: ['dense_1/bias'] })],
  ['wrt dense_2/kernel then dense_1/kernel', request([5, 20, 20, 3], 32, { wrt: ['dense_2/kernel', 'dense_1/kernel'] })],
];

/** 2 m n k for a matMul kernel: output [.., m, n] (any leading batch dims), k = the rest of the first input. */
function matMulFlops(kernel: { inputShapes: number[][]; outputShapes: number[][] }): number {
  const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const out = kernel.outputShapes[0];
  const rows = count(out) / out[out.length - 1]; // batch * m
  const k = count(kernel.inputShapes[0]) / rows;
  return 2 * count(out) * k;
}

describe('peak memory of a worker task', () => {
  it.each(CASES)('%s: the estimate bounds the tensors TF.js holds at the peak, within a factor of 4', async (_name, body) => {
    const budget = 24 * MiB; // small enough that K is chosen by memory in the larger cases
    const cost = estimateCost(costShape(parseRequest(body)), budget);
    expect(cost.peakBytes).toBeLessThanOrEqual(budget);
    let worst = 0;
    let model: PreparedModel | null = null;
    const prepared = await tf.profile(() => {
      model = new PreparedModel(parseRequest(body));
    });
    try {
      for (const block of planRowBlocks(model!.parameters, cost.blockSize)) {
        let rowsBytes = 0;
        const info = await tf.profile(() => {
          rowsBytes = hessianRows(model!, block, true).byteLength;
        });
        // Tensors at the peak (the prepared model's included) plus the rows handed back to JS.
        worst = Math.max(worst, info.peakBytes + rowsBytes);
      }
    } finally {
      model!.dispose();
    }
    worst = Math.max(worst, prepared.peakBytes);
    expect(worst).toBeGreaterThan(0);
    expect(cost.peakBytes).toBeGreaterThanOrEqual(worst);
    expect(cost.peakBytes).toBeLessThan(4 * worst + 64 * 1024);
  });
});

describe('operations of a job', () => {
  it.each(CASES)('%s: the estimate bounds the multiply-adds of every matMul the passes run, within a factor of 3', async (_name, body) => {
    const cost = estimateCost(costShape(parseRequest(body)), 256 * MiB);
    let counted = 0;
    let model: PreparedModel | null = null;
    const count = (info: { kernels: any[] }) => {
      for (const k of info.kernels) if (k.name === 'BatchMatMul' || k.name === '_FusedMatMul') counted += matMulFlops(k);
    };
    count(await tf.profile(() => void (model = new PreparedModel(parseRequest(body)))));
    try {
      for (const block of planRowBlocks(model!.parameters, cost.blockSize)) count(await tf.profile(() => void hessianRows(model!, block, true)));
    } finally {
      model!.dispose();
    }
    expect(counted).toBeGreaterThan(0);
    expect(cost.flops).toBeGreaterThanOrEqual(counted);
    expect(cost.flops).toBeLessThan(3 * counted);
  });
});

describe('block size', () => {
  it('the 3000x3000 layer with wrt dense_1/bias and batch 1 fits the budget (the old plan, K = 512, needed about 17 GiB)', () => {
    const body = { model: { inputShape: [3000], seed: 1, layers: [{ type: 'dense', units: 3000 }] }, loss: 'meanSquaredError', data: { x: [new Array(3000).fill(0.1)], y: [new Array(3000).fill(0)] }, wrt: ['dense_1/bias'] };
    const shape = costShape(parseRequest(body));
    const budget = 2048 * MiB;
    const cost = estimateCost(shape, budget);
    expect(cost.peakBytes).toBeLessThanOrEqual(budget);
    // The [n+1, K*m] product alone at K = 512: 3001 * 512 * 3000 floats.
    expect(estimateCost(shape, Infinity).blockSize).toBe(512);
    expect(estimateCost(shape, Infinity).peakBytes).toBeGreaterThan(3001 * 512 * 3000 * 4);
    expect(cost.blockSize).toBeLessThan(512);
    expect(cost.blockSize).toBeGreaterThanOrEqual(1);
  });

  it('a bigger budget never gives a smaller block, and the block never exceeds P', () => {
    const shape = costShape(parseRequest(request([20, 64, 64, 10], 256)));
    let previous = 0;
    for (const mb of [4, 16, 64, 256, 1024]) {
      const { blockSize } = estimateCost(shape, mb * MiB);
      expect(blockSize).toBeGreaterThanOrEqual(previous);
      previous = blockSize;
    }
    const tiny = costShape(parseRequest(fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!.request));
    expect(estimateCost(tiny, 1024 * MiB).blockSize).toBe(4);
  });
});
