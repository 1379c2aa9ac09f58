/**
 * GGN, empirical Fisher and exact diagonals of graph models (issue #11 on the graph engine) against the
 * float64 PyTorch references of test/fixtures/graph-curvature.json (generate_graph_curvature.py: explicit
 * J_bᵀ Λ_b J_b and per-example gradients, no code shared with src/): the matrices, the diagonals of H,
 * GGN and Fisher and their exact traces, M v on random directions, GGN eigenvalues by block Lanczos, and
 * the identities (GGN = H for a model linear in its parameters under MSE; Fisher, and GGN under a loss
 * convex in the logits, positive semi-definite).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { PreparedGraph } from '../src/compute/graph/index.js';
import { initBackend } from '../src/compute/index.js';
import { computeQuantity, type CurvatureQuery } from '../src/compute/quantities/index.js';
import { importRequest } from '../src/schemas/import/index.js';
import { isPositiveSemiDefinite } from './curvature-helpers.js';
import { fullHessian, randomVectors, referenceTimes } from './graph-helpers.js';
import { relativeError } from './helpers.js';

const TOLERANCE = 1e-4;
const MATRICES = ['hessian', 'ggn', 'fisher'] as const;

interface Reference {
  matrix: number[][];
  diagonal: number[];
  trace: number;
  eigenvalues: number[];
}
interface GraphCurvatureCase {
  name: string;
  request: unknown;
  expected: { size: number; hessian: Reference; ggn: Reference; fisher: Reference };
}

const cases: GraphCurvatureCase[] = JSON.parse(readFileSync(new URL('./fixtures/graph-curvature.json', import.meta.url), 'utf8')).cases;

beforeAll(async () => {
  await initBackend();
});

function withGraph<T>(request: unknown, run: (graph: PreparedGraph) => T): T {
  const graph = new PreparedGraph(importRequest(request));
  try {
    return run(graph);
  } finally {
    graph.dispose();
  }
}

/** 5 directions (or examples) per product: blocks that straddle nothing and end short. */
const quantity = (graph: PreparedGraph, query: CurvatureQuery) => computeQuantity(graph, query, 5);

describe.each(cases)('$name', ({ name, request, expected }) => {
  it.each(['ggn', 'fisher'] as const)('the %s matrix matches; it is positive semi-definite exactly when the reference is', (matrix) =>
    withGraph(request, (graph) => {
      const result = quantity(graph, { quantity: matrix });
      expect(result.matrix).toHaveLength(expected.size ** 2);
      expect(relativeError(result.matrix!, expected[matrix].matrix.flat())).toBeLessThan(TOLERANCE);
      const { eigenvalues } = expected[matrix];
      const referencePsd = eigenvalues[0] >= -1e-5 * Math.max(...eigenvalues.map(Math.abs));
      if (matrix === 'fisher') expect(referencePsd).toBe(true);
      expect(isPositiveSemiDefinite(result.matrix!, expected.size, 1e-5)).toBe(referencePsd);
    }),
  );

  it.each(MATRICES)('the exact %s diagonal and its trace match', (matrix) =>
    withGraph(request, (graph) => {
      const diagonal = quantity(graph, { quantity: 'diagonal', matrix }).fields.diagonal as Float32Array;
      expect(diagonal).toHaveLength(expected.size);
      expect(relativeError(diagonal, expected[matrix].diagonal)).toBeLessThan(TOLERANCE);
      const trace = quantity(graph, { quantity: 'trace', matrix, method: 'exact', samples: 0, seed: 0 }).fields.trace as number;
      const scale = Math.max(...expected[matrix].diagonal.map(Math.abs));
      expect(Math.abs(trace - expected[matrix].trace) / scale).toBeLessThan(TOLERANCE);
    }),
  );

  it('GGN and Fisher products on random directions match M v', () =>
    withGraph(request, (graph) => {
      const count = 3;
      const vectors = randomVectors(count, graph.size, 11);
      for (const matrix of ['ggn', 'fisher'] as const) {
        const products = graph.times(matrix, vectors, count);
        expect(relativeError(products, referenceTimes(expected[matrix].matrix, vectors, count)), matrix).toBeLessThan(TOLERANCE);
      }
    }),
  );

  if (name.startsWith('linear_conv')) {
    it('GGN = H for a model linear in its parameters under MSE (the engine against itself and the reference)', () =>
      withGraph(request, (graph) => {
        const ggn = quantity(graph, { quantity: 'ggn' }).matrix!;
        expect(relativeError(ggn, fullHessian(graph, 7))).toBeLessThan(TOLERANCE);
        expect(relativeError(ggn, expected.hessian.matrix.flat())).toBeLessThan(TOLERANCE);
      }));
  }
});

describe('exact diagonals with fewer directions per pass than logits or examples', () => {
  const { request, expected } = cases.find((c) => c.name === 'global_max_pooling_relu_softmax_cce_probs')!; // 3 logits, batch 4
  it.each(MATRICES)('the %s diagonal, 2 directions per pass', (matrix) =>
    withGraph(request, (graph) => {
      const diagonal = computeQuantity(graph, { quantity: 'diagonal', matrix }, 2).fields.diagonal as Float32Array;
      expect(relativeError(diagonal, expected[matrix].diagonal)).toBeLessThan(TOLERANCE);
    }),
  );
});

describe('GGN and Fisher of a graph model through Krylov methods: eigenvalues, Hutchinson, density', () => {
  const { request, expected } = cases.find((c) => c.name === 'functional_conv_residual_block_batchnorm_relu')!;
  it.each(['ggn', 'fisher'] as const)('the 2 largest of the %s match a dense eigendecomposition', (matrix) =>
    withGraph(request, (graph) => {
      const all = [...expected[matrix].eigenvalues].sort((a, b) => b - a);
      const { fields } = quantity(graph, { quantity: 'eigenvalues', matrix, k: 2, which: 'largest', vectors: false, tolerance: 1e-5, seed: 1 });
      expect(fields.converged).toBe(true);
      (fields.eigenvalues as number[]).forEach((value, i) => expect(Math.abs(value - all[i]) / all[0]).toBeLessThan(1e-3));
    }),
  );

  it.each(['ggn', 'fisher'] as const)("the %s's Hutchinson trace is within 4 standard errors of the exact one; its density integrates to 1", (matrix) =>
    withGraph(request, (graph) => {
      const { fields } = quantity(graph, { quantity: 'trace', matrix, method: 'hutchinson', samples: 200, seed: 4 });
      expect(fields.stdError as number).toBeGreaterThan(0);
      expect(Math.abs((fields.trace as number) - expected[matrix].trace)).toBeLessThan(4 * (fields.stdError as number));
      const density = quantity(graph, { quantity: 'density', matrix, runs: 3, steps: 15, gridPoints: 400, seed: 2 }).fields;
      const grid = density.grid as number[];
      const values = density.density as number[];
      let integral = 0;
      for (let i = 1; i < grid.length; i++) integral += ((grid[i] - grid[i - 1]) * (values[i] + values[i - 1])) / 2;
      expect(Math.abs(integral - 1)).toBeLessThan(1e-3);
    }),
  );
});
