import { applyInBlocks, type LinearOperator } from '../operators/index.js';
import { dot, rademacher } from './linalg.js';

/**
 * Hutchinson's estimator: tr(M) = E[z^T M z] for Rademacher z. The probes go through the operator in
 * blocks; the standard error is the sample standard deviation over sqrt(samples).
 */
export function hutchinsonTrace(operator: LinearOperator, samples: number, random: () => number): { trace: number; stdError: number } {
  const size = operator.size;
  const estimates: number[] = [];
  for (let first = 0; first < samples; first += operator.blockSize) {
    const count = Math.min(operator.blockSize, samples - first);
    const probes = new Float32Array(count * size);
    for (let d = 0; d < count; d++) probes.set(rademacher(size, random), d * size);
    const products = applyInBlocks(operator, probes, count);
    for (let d = 0; d < count; d++) {
      estimates.push(dot(probes.subarray(d * size, (d + 1) * size), products.subarray(d * size, (d + 1) * size)));
    }
  }
  const mean = estimates.reduce((a, b) => a + b, 0) / samples;
  const variance = samples > 1 ? estimates.reduce((a, e) => a + (e - mean) ** 2, 0) / (samples - 1) : Number.NaN;
  return { trace: mean, stdError: Math.sqrt(variance / samples) };
}
