import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, PreparedModel } from '../src/compute/index.js';
import { computeHessian, parseRequest } from '../src/hessian.js';
import { lanczosEigen } from '../src/compute/algorithms/lanczos.js';
import { mulberry32 } from '../src/compute/initializers.js';
import { curvatureOperator } from '../src/compute/operators/index.js';
import { computeQuantity, type CurvatureQuery } from '../src/compute/quantities/index.js';
import { curvatureCases, isPositiveSemiDefinite } from './curvature-helpers.js';
import { relativeError } from './helpers.js';

// References: float64 PyTorch (test/fixtures/generate_curvature.py), sharing no code with the engine.
beforeAll(async () => {
  await initBackend();
});

const MATRICES = ['hessian', 'ggn', 'fisher'] as const;

function withModel<T>(request: unknown, run: (model: PreparedModel) => T): T {
  const model = new PreparedModel(parseRequest(request));
  try {
    return run(model);
  } finally {
    model.dispose();
  }
}

const quantity = (request: unknown, query: CurvatureQuery) => withModel(request, (model) => computeQuantity(model, query));

describe.each(curvatureCases())('$name', ({ request, expected }) => {
  it.each(MATRICES)('%s-vector products match M v', (matrix) => {
    const { fields } = quantity(request, { quantity: 'hvp', matrix, vectors: expected.vectors });
    const products = fields.products as Float32Array[];
    expect(products).toHaveLength(2);
    expect(relativeError(products.flatMap((p) => Array.from(p)), expected[matrix].products.flat())).toBeLessThan(1e-4);
  });

  it.each(['ggn', 'fisher'] as const)('the %s matrix matches and is positive semi-definite', (matrix) => {
    const result = quantity(request, { quantity: matrix });
    expect(result.matrix).toHaveLength(expected.size ** 2);
    expect(relativeError(result.matrix!, expected[matrix].matrix.flat())).toBeLessThan(1e-4);
    expect(isPositiveSemiDefinite(result.matrix!, expected.size, 1e-5)).toBe(true);
  });

  it.each(MATRICES)('the exact %s diagonal and trace match', (matrix) => {
    const { fields } = quantity(request, { quantity: 'diagonal', matrix });
    expect(relativeError(fields.diagonal as Float32Array, expected[matrix].diagonal)).toBeLessThan(1e-4);
    const trace = quantity(request, { quantity: 'trace', matrix, method: 'exact', samples: 0, seed: 0 }).fields.trace as number;
    const scale = Math.max(...expected[matrix].diagonal.map(Math.abs));
    expect(Math.abs(trace - expected[matrix].trace) / scale).toBeLessThan(1e-4);
  });

  it.each([
    ['hessian', 'largest'],
    ['hessian', 'smallest'],
    ['hessian', 'largestMagnitude'],
    ['ggn', 'largest'],
  ] as const)('%s eigenvalues (%s, k = 3) match a dense eigendecomposition, with their eigenvectors', (matrix, which) => {
    const { eigenvalues: all, eigenvectors: allVectors } = expected[matrix];
    const order = all.map((_, i) => i);
    if (which === 'largest') order.reverse();
    if (which === 'largestMagnitude') order.sort((a, b) => Math.abs(all[b]) - Math.abs(all[a]));
    const wanted = order.slice(0, 3);
    const { fields } = quantity(request, { quantity: 'eigenvalues', matrix, k: 3, which, vectors: true, tolerance: 1e-5, seed: 1 });
    const values = fields.eigenvalues as number[];
    const vectors = fields.eigenvectors as Float32Array[];
    const scale = Math.max(...all.map(Math.abs));
    expect(fields.converged).toBe(true);
    wanted.forEach((j, i) => {
      expect(Math.abs(values[i] - all[j]) / scale).toBeLessThan(1e-3);
      expect((fields.residuals as number[])[i] / scale).toBeLessThan(1e-3);
      const gap = Math.min(...all.filter((_, o) => o !== j).map((v) => Math.abs(v - all[j])));
      if (gap > 1e-2 * scale) {
        const overlap = allVectors[j].reduce((s, v, e) => s + v * vectors[i][e], 0);
        expect(Math.abs(overlap)).toBeGreaterThanOrEqual(0.999);
      }
    });
  });

  it('restarted block Lanczos (a basis of 6 vectors for P of 8 to 59) still converges to the 3 largest', () => {
    const all = [...expected.hessian.eigenvalues].sort((a, b) => b - a);
    const scale = Math.max(...all.map(Math.abs));
    const result = withModel(request, (model) =>
      lanczosEigen(curvatureOperator(model, 'hessian'), { k: 3, which: 'largest', tolerance: 1e-5, maxBasis: 6, maxIterations: 500, block: 3, random: mulberry32(3) }),
    );
    expect(result.converged).toBe(true);
    expect(result.iterations).toBeGreaterThan(3); // the basis filled and restarted at least once
    result.eigenvalues.forEach((value, i) => {
      expect(Math.abs(value - all[i]) / scale).toBeLessThan(1e-3);
      expect(result.residuals[i] / scale).toBeLessThan(1e-3);
    });
  });

  it('Hutchinson is within 4 standard errors of the exact trace', () => {
    const { fields } = quantity(request, { quantity: 'trace', matrix: 'hessian', method: 'hutchinson', samples: 200, seed: 7 });
    expect(fields.stdError as number).toBeGreaterThan(0);
    expect(Math.abs((fields.trace as number) - expected.hessian.trace)).toBeLessThan(4 * (fields.stdError as number));
  });

  it('the spectral density integrates to 1, and its mean is trace / P', () => {
    const runs = 8;
    const { fields } = quantity(request, { quantity: 'density', matrix: 'hessian', runs, steps: 30, gridPoints: 2000, seed: 3 });
    const grid = fields.grid as number[];
    const density = fields.density as number[];
    let integral = 0;
    let mean = 0;
    for (let i = 1; i < grid.length; i++) {
      const h = grid[i] - grid[i - 1];
      integral += (h * (density[i] + density[i - 1])) / 2;
      mean += (h * (grid[i] * density[i] + grid[i - 1] * density[i - 1])) / 2;
    }
    expect(Math.abs(integral - 1)).toBeLessThan(1e-3);
    // Each run's quadrature mean is z^T H z / P for its probe z: a Hutchinson sample over P.
    const runMeans = (fields.nodes as number[][]).map((nodes, r) => nodes.reduce((s, t, i) => s + t * (fields.weights as number[][])[r][i], 0));
    const average = runMeans.reduce((a, b) => a + b, 0) / runs;
    const stdError = Math.sqrt(runMeans.reduce((s, m) => s + (m - average) ** 2, 0) / (runs - 1) / runs);
    expect(Math.abs(mean - average)).toBeLessThan(1e-3 * Math.max(...expected.hessian.eigenvalues.map(Math.abs)));
    expect(Math.abs(mean - expected.hessian.trace / expected.size)).toBeLessThan(4 * stdError + 1e-6);
    (fields.weights as number[][]).forEach((w) => expect(Math.abs(w.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-6));
  });
});

describe('identities', () => {
  it('the GGN is the Hessian for a linear model under mean squared error', async () => {
    const { request } = curvatureCases().find((c) => c.name === 'linear_mse')!;
    const hessian = (await computeHessian(request)).hessian!;
    const ggn = quantity(request, { quantity: 'ggn' }).matrix!;
    expect(relativeError(ggn, Array.from(hessian))).toBeLessThan(1e-6);
  });
});
