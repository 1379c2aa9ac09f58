/**
 * The graph engine against test/fixtures/graphs.json: float64 PyTorch references (generate_graphs.py,
 * no code shared with src/) for every layer, alone and combined, in our own JSON wire format. Loss,
 * gradient, the full Hessian from row blocks (whole and upper-only with the symmetric fill), and H V
 * on random directions, on the active backend.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { planRowBlocks } from '../src/compute/curvature.js';
import { PreparedGraph } from '../src/compute/graph/index.js';
import { initBackend } from '../src/compute/index.js';
import { importRequest } from '../src/schemas/import/index.js';
import { fullHessian, randomVectors, referenceTimes } from './graph-helpers.js';
import { relativeError, type FixtureCase } from './helpers.js';

const TOLERANCE = 1e-4;

const cases: FixtureCase[] = JSON.parse(readFileSync(new URL('./fixtures/graphs.json', import.meta.url), 'utf8')).cases;

beforeAll(async () => {
  await initBackend();
});

/** Upper-only rows with the lower columns copied from earlier nodes' rows, as the job manager fills them. */
function symmetricFill(graph: PreparedGraph, blockSize: number): Float32Array {
  const p = graph.size;
  const hessian = new Float32Array(p * p);
  const blocks = planRowBlocks(graph.parameters, blockSize);
  const layerOf = (b: (typeof blocks)[number]) => graph.parameters[b.tensor].layer;
  for (const block of [...blocks].sort((a, b) => layerOf(a) - layerOf(b))) {
    const rows = graph.rows(block, true);
    for (const lower of graph.parameters.filter((t) => t.layer < layerOf(block))) {
      for (let d = 0; d < block.count; d++) {
        for (let e = 0; e < lower.size; e++) rows[d * p + lower.offset + e] = hessian[(lower.offset + e) * p + block.row + d];
      }
    }
    hessian.set(rows, block.row * p);
  }
  return hessian;
}

describe.each(cases)('$name', ({ request, expected }) => {
  it('matches the float64 reference: parameters, loss, gradient, Hessian (whole rows and the symmetric fill), H V', () => {
    const graph = new PreparedGraph(importRequest(request));
    try {
      expect(graph.parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size }))).toEqual(expected.parameters);
      expect(Math.abs(graph.loss - expected.loss) / Math.max(1, Math.abs(expected.loss))).toBeLessThan(TOLERANCE);
      expect(relativeError(graph.gradient, expected.gradient)).toBeLessThan(TOLERANCE);
      const reference = expected.hessian.flat();
      expect(relativeError(fullHessian(graph, 32), reference)).toBeLessThan(TOLERANCE);
      expect(relativeError(symmetricFill(graph, 17), reference)).toBeLessThan(TOLERANCE);
      const count = 4;
      const vectors = randomVectors(count, graph.size, 5);
      expect(relativeError(graph.times('hessian', vectors, count), referenceTimes(expected.hessian, vectors, count))).toBeLessThan(TOLERANCE);
    } finally {
      graph.dispose();
    }
  });
});
