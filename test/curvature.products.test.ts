/**
 * Curvature quantities on a model known only by its products (the graph engine's PreparedGraph; here a
 * dense model seen through its operators' products and exact diagonal alone), against the float64
 * PyTorch references of test/fixtures/curvature.json.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, PreparedModel } from '../src/compute/index.js';
import { curvatureOperator, type CurvatureProducts } from '../src/compute/operators/index.js';
import { computeQuantity, exactDiagonal, type CurvatureQuery } from '../src/compute/quantities/index.js';
import { parseRequest } from '../src/hessian.js';
import { curvatureCases } from './curvature-helpers.js';
import { relativeError } from './helpers.js';

beforeAll(async () => {
  await initBackend();
});

/** Runs `query` on the request's model seen only through its products, 3 directions per product. */
function onProducts(request: unknown, query: CurvatureQuery) {
  const model = new PreparedModel(parseRequest(request));
  try {
    const products: CurvatureProducts = {
      size: model.size,
      times: (kind, vectors, count) => curvatureOperator(model, kind, 3).apply(vectors, count),
      diagonal: (kind) => exactDiagonal(model, kind),
    };
    return computeQuantity(products, query, 3);
  } finally {
    model.dispose();
  }
}

describe.each(curvatureCases())('$name', ({ request, expected }) => {
  it('Hessian-vector products match H v', () => {
    const products = onProducts(request, { quantity: 'hvp', matrix: 'hessian', vectors: expected.vectors }).fields.products as Float32Array[];
    expect(relativeError(products.flatMap((p) => Array.from(p)), expected.hessian.products.flat())).toBeLessThan(1e-4);
  });

  it('the 2 largest eigenvalues match a dense eigendecomposition', () => {
    const all = [...expected.hessian.eigenvalues].sort((a, b) => b - a);
    const { fields } = onProducts(request, { quantity: 'eigenvalues', matrix: 'hessian', k: 2, which: 'largest', vectors: false, tolerance: 1e-5, seed: 1 });
    const scale = Math.max(...all.map(Math.abs));
    expect(fields.converged).toBe(true);
    (fields.eigenvalues as number[]).forEach((value, i) => expect(Math.abs(value - all[i]) / scale).toBeLessThan(1e-3));
  });

  it('Hutchinson is within 4 standard errors of the exact trace', () => {
    const { fields } = onProducts(request, { quantity: 'trace', matrix: 'hessian', method: 'hutchinson', samples: 200, seed: 7 });
    expect(fields.stdError as number).toBeGreaterThan(0);
    expect(Math.abs((fields.trace as number) - expected.hessian.trace)).toBeLessThan(4 * (fields.stdError as number));
  });

  it('the spectral density integrates to 1', () => {
    const { fields } = onProducts(request, { quantity: 'density', matrix: 'hessian', runs: 4, steps: 20, gridPoints: 500, seed: 3 });
    const grid = fields.grid as number[];
    const density = fields.density as number[];
    let integral = 0;
    for (let i = 1; i < grid.length; i++) integral += ((grid[i] - grid[i - 1]) * (density[i] + density[i - 1])) / 2;
    expect(Math.abs(integral - 1)).toBeLessThan(1e-3);
  });
});
