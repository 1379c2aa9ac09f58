/**
 * The graph cost estimate (src/compute/graph/cost.ts) against what the engine really does: TF.js's own
 * count of the bytes its tensors hold at the peak of a task (tf.profile) and the multiply-adds of every
 * matMul and convolution kernel it ran, on a small CNN and models of several kinds from graphs.json.
 * The estimate must bound both; how loose it may be is checked only coarsely: on the small CNN it was
 * within 2x (memory) and 2.5x (operations), on the tiny fixture models, where fixed per-node sizes
 * dominate, up to 18x and 6x.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { planRowBlocks } from '../src/compute/curvature.js';
import { graphCost, PreparedGraph } from '../src/compute/graph/index.js';
import { initBackend } from '../src/compute/index.js';
import type { EngineRequest } from '../src/compute/spec.js';
import { mulberry32 } from '../src/compute/initializers.js';
import { tf } from '../src/compute/tf.js';
import { importRequest } from '../src/schemas/import/index.js';
import type { FixtureCase } from './helpers.js';

beforeAll(async () => {
  await initBackend();
});

const MiB = 2 ** 20;
const cases: FixtureCase[] = JSON.parse(readFileSync(new URL('./fixtures/graphs.json', import.meta.url), 'utf8')).cases;
const NAMES = [
  'lenet_valid_conv_maxpool_sparse_cce_logits_binary_x',
  'functional_conv_residual_block_batchnorm_relu',
  'avgpool_same_pool2_strides1',
  'embedding_dense_rank3_flatten_bce_logits_binary_ids',
  'wrt_lenet_cross_layer_pair_reversed',
];
/** A small CNN in the engine's own spec (weights from the seed): conv, max pool, conv, average pool, dense; batch 32. */
function smallCnn(): EngineRequest {
  const batch = 32;
  const random = mulberry32(3);
  const image = (shape: number[]) => Float32Array.from({ length: batch * shape.reduce((a, b) => a * b, 1) }, () => random());
  const conv = (name: string, input: string, filters: number, size: number) => ({
    name, type: 'conv2d' as const, inputs: [input], weights: {}, trainable: true,
    config: { filters, kernelSize: [size, size] as [number, number], strides: [1, 1] as [number, number], padding: 'valid' as const, activation: { type: 'tanh' }, useBias: true, kernelL2: 0 },
  });
  const pool = (name: string, type: 'maxPooling2d' | 'averagePooling2d', input: string) => ({
    name, type, inputs: [input], weights: {}, trainable: true, config: { poolSize: [2, 2] as [number, number], strides: [2, 2] as [number, number], padding: 'same' as const },
  });
  const nodes = [
    conv('c1', 'input', 4, 5), pool('p1', 'maxPooling2d', 'c1'), conv('c2', 'p1', 8, 3), pool('p2', 'averagePooling2d', 'c2'),
    { name: 'f', type: 'flatten' as const, inputs: ['p2'], weights: {}, trainable: true, config: {} },
    { name: 'd', type: 'dense' as const, inputs: ['f'], weights: {}, trainable: true, config: { units: 10, activation: { type: 'linear' }, useBias: true, kernelL2: 0 } },
  ] as EngineRequest['model']['nodes'];
  const labels = Float32Array.from({ length: batch }, () => Math.floor(random() * 10));
  return {
    model: { input: { name: 'input', shape: [16, 16, 1], dtype: 'float32' }, nodes, output: 'd', seed: 1 },
    loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true },
    data: { x: { shape: [batch, 16, 16, 1], values: image([16, 16, 1]) }, y: { rows: batch, columns: 1, values: labels } },
  };
}

const CASES: [string, EngineRequest][] = [
  ['a small CNN, batch 32 (P = 743)', smallCnn()],
  ...NAMES.map((name): [string, EngineRequest] => [name, importRequest(cases.find((c) => c.name === name)!.request)]),
];

/** 2 m n k of a matMul or a convolution kernel, from its shapes. */
function kernelFlops(kernel: { name: string; inputShapes: number[][]; outputShapes: number[][] }): number {
  const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  if (kernel.name === 'BatchMatMul' || kernel.name === '_FusedMatMul') return 2 * count(kernel.outputShapes[0]) * contracted(kernel);
  if (kernel.name === 'Conv2D' || kernel.name === 'FusedConv2D') {
    const [kh, kw, inC] = kernel.inputShapes[1];
    return 2 * count(kernel.outputShapes[0]) * kh * kw * inC;
  }
  if (kernel.name === 'Conv2DBackpropInput') {
    const [kh, kw, inC] = kernel.inputShapes[1];
    return 2 * count(kernel.inputShapes[0]) * kh * kw * inC;
  }
  return 0;
}

/** The contracted size of a batch matMul: A's last two dims minus the output's row count. */
function contracted(kernel: { inputShapes: number[][]; outputShapes: number[][] }): number {
  const a = kernel.inputShapes[0];
  const out = kernel.outputShapes[0];
  const [r1, r2] = a.slice(-2);
  return r1 === out[out.length - 2] ? r2 : r1; // transposeA or not
}

describe('peak memory of a graph task', () => {
  it.each(CASES)('%s: the estimate bounds the tensors TF.js holds at the peak, within a factor of 20', async (_name, request) => {
    const budget = 24 * MiB;
    const cost = graphCost(request, budget);
    expect(cost.peakBytes).toBeLessThanOrEqual(budget);
    let graph: PreparedGraph | null = null;
    const prepared = await tf.profile(() => void (graph = new PreparedGraph(request)));
    let worst = prepared.peakBytes;
    try {
      for (const block of planRowBlocks(graph!.parameters, cost.blockSize)) {
        let rowsBytes = 0;
        const info = await tf.profile(() => void (rowsBytes = graph!.rows(block, true).byteLength));
        worst = Math.max(worst, info.peakBytes + rowsBytes);
      }
    } finally {
      graph!.dispose();
    }
    expect(cost.peakBytes).toBeGreaterThanOrEqual(worst);
    expect(cost.peakBytes).toBeLessThan(20 * worst + 64 * 1024);
  });
});

describe('operations of a graph job', () => {
  it.each(CASES)('%s: the estimate bounds the multiply-adds of every matMul and convolution, within a factor of 8', async (_name, request) => {
    const cost = graphCost(request, 256 * MiB);
    let counted = 0;
    const count = (info: { kernels: any[] }) => {
      for (const k of info.kernels) counted += kernelFlops(k);
    };
    let graph: PreparedGraph | null = null;
    count(await tf.profile(() => void (graph = new PreparedGraph(request))));
    try {
      for (const block of planRowBlocks(graph!.parameters, cost.blockSize)) count(await tf.profile(() => void graph!.rows(block, true)));
    } finally {
      graph!.dispose();
    }
    expect(counted).toBeGreaterThan(0);
    expect(cost.flops).toBeGreaterThanOrEqual(counted);
    expect(cost.flops).toBeLessThan(8 * counted);
  });
});

describe('block size', () => {
  it('a bigger budget never gives a smaller block; the block never exceeds P; a budget below the least task gives 1', () => {
    const request = CASES[0][1];
    let previous = 0;
    for (const mb of [1, 4, 16, 64, 1024]) {
      const { blockSize, size } = graphCost(request, mb * MiB);
      expect(blockSize).toBeGreaterThanOrEqual(previous);
      expect(blockSize).toBeLessThanOrEqual(size);
      previous = blockSize;
    }
    expect(graphCost(request, 1).blockSize).toBe(1);
  });
});
