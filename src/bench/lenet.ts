/**
 * The convolutional benchmark case: the full Hessian of a LeNet-like net on MNIST-sized images, by the
 * graph engine in this process (no HTTP, no worker pool), on HESSIAN_BACKEND's backend. 28x28x1 input,
 * conv 5x5x6 valid relu, max pool 2, conv 5x5x16 valid relu, max pool 2, flatten, dense 32 tanh,
 * dense 10, softmax cross-entropy from logits on integer labels, batch 128: P = 11126. Rows are computed
 * as a job computes them: blocks of graphCost's size, upper-only (the lower columns come by symmetry).
 *
 * Usage: node dist/bench/lenet.js [--batch 128] [--budget-mb 2048] [--max-blocks N]
 * (--max-blocks stops early and extrapolates the time from the blocks' share of the estimated operations).
 */
import { loadavg } from 'node:os';
import { backendPreference } from '../compute/backend.js';
import { planRowBlocks } from '../compute/curvature.js';
import { graphCost, PreparedGraph } from '../compute/graph/index.js';
import { initBackend } from '../compute/index.js';
import { mulberry32 } from '../compute/initializers.js';
import type { EngineRequest, NodeSpec } from '../compute/spec.js';

export function lenetRequest(batch: number): EngineRequest {
  const random = mulberry32(7);
  const conv = (name: string, input: string, filters: number): NodeSpec => ({
    name, type: 'conv2d', inputs: [input], weights: {}, trainable: true,
    config: { filters, kernelSize: [5, 5], strides: [1, 1], padding: 'valid', activation: { type: 'relu' }, useBias: true, kernelL2: 0 },
  });
  const pool = (name: string, input: string): NodeSpec => ({
    name, type: 'maxPooling2d', inputs: [input], weights: {}, trainable: true, config: { poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
  });
  const dense = (name: string, input: string, units: number, activation: string): NodeSpec => ({
    name, type: 'dense', inputs: [input], weights: {}, trainable: true, config: { units, activation: { type: activation }, useBias: true, kernelL2: 0 },
  });
  const nodes: NodeSpec[] = [
    conv('conv2d_1', 'input', 6), pool('max_pooling2d_2', 'conv2d_1'), conv('conv2d_3', 'max_pooling2d_2', 16), pool('max_pooling2d_4', 'conv2d_3'),
    { name: 'flatten_5', type: 'flatten', inputs: ['max_pooling2d_4'], weights: {}, trainable: true, config: {} },
    dense('dense_6', 'flatten_5', 32, 'tanh'), dense('dense_7', 'dense_6', 10, 'linear'),
  ];
  return {
    model: { input: { name: 'input', shape: [28, 28, 1], dtype: 'float32' }, nodes, output: 'dense_7', seed: 1 },
    loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true },
    data: {
      x: { shape: [batch, 28, 28, 1], values: Float32Array.from({ length: batch * 784 }, () => random()) },
      y: { rows: batch, columns: 1, values: Float32Array.from({ length: batch }, () => Math.floor(random() * 10)) },
    },
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const option = (name: string, fallback: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
  const batch = option('--batch', 128);
  const budget = option('--budget-mb', 2048) * 2 ** 20;
  const maxBlocks = option('--max-blocks', Infinity);
  const backend = await initBackend(backendPreference());
  const request = lenetRequest(batch);
  const cost = graphCost(request, budget);
  const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`LeNet-like, batch ${batch}, P = ${cost.size}, ${backend.backend}, K = ${cost.blockSize}, estimated ${(cost.flops / 1e9).toFixed(1)} GFLOP, peak ${(cost.peakBytes / 2 ** 20).toFixed(0)} MiB; load ${load()}`);
  const started = performance.now();
  const graph = new PreparedGraph(request);
  try {
    const prepared = performance.now();
    const blocks = planRowBlocks(graph.parameters, cost.blockSize);
    const layerOf = (i: number) => graph.parameters[blocks[i].tensor].layer;
    const order = blocks.map((_, i) => i).sort((a, b) => layerOf(a) - layerOf(b) || a - b);
    let trace = 0;
    let done = 0;
    let doneFlops = 0;
    const flopsOf = (i: number) => graphCost({ ...request, wrt: [graph.parameters[blocks[i].tensor].name] }, budget).flops / graph.parameters[blocks[i].tensor].size * blocks[i].count;
    for (const i of order.slice(0, Math.min(order.length, maxBlocks))) {
      const block = blocks[i];
      const rows = graph.rows(block, true);
      for (let d = 0; d < block.count; d++) trace += rows[d * graph.size + block.row + d];
      done++;
      if (Number.isFinite(maxBlocks)) doneFlops += flopsOf(i);
    }
    const seconds = (performance.now() - started) / 1000;
    const share = Number.isFinite(maxBlocks) && done < blocks.length ? doneFlops / cost.flops : 1;
    console.log(
      `prepared in ${((prepared - started) / 1000).toFixed(2)} s; ${done} of ${blocks.length} row blocks in ${seconds.toFixed(1)} s` +
        (share < 1 ? ` (about ${(share * 100).toFixed(0)}% of the operations: whole Hessian about ${(seconds / share).toFixed(0)} s)` : `; trace of H ${trace.toPrecision(6)}`) +
        `; load ${load()}`,
    );
  } finally {
    graph.dispose();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) await main();
