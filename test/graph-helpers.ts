/** Shared helpers of the graph engine's tests (test/graph.*.test.ts). */
import { planRowBlocks } from '../src/compute/curvature.js';
import type { PreparedGraph } from '../src/compute/graph/index.js';
import { mulberry32 } from '../src/compute/initializers.js';

/** The full Hessian from row blocks of `blockSize` unit directions. */
export function fullHessian(graph: PreparedGraph, blockSize: number, upperOnly = false): Float32Array {
  const p = graph.size;
  const hessian = new Float32Array(p * p);
  for (const block of planRowBlocks(graph.parameters, blockSize)) hessian.set(graph.rows(block, upperOnly), block.row * p);
  return hessian;
}

export function randomVectors(count: number, size: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: count * size }, () => 2 * random() - 1);
}

/** H V in float64 from a float64 reference matrix. */
export function referenceTimes(hessian: number[][], vectors: Float32Array, count: number): Float64Array {
  const p = hessian.length;
  const out = new Float64Array(count * p);
  for (let d = 0; d < count; d++) for (let i = 0; i < p; i++) {
    let sum = 0;
    for (let j = 0; j < p; j++) sum += hessian[i][j] * vectors[d * p + j];
    out[d * p + i] = sum;
  }
  return out;
}

