import { applyInBlocks, type LinearOperator } from '../operators/index.js';
import { dot, orthogonalize, rademacher, subtractScaled, tridiagonalEigen } from './linalg.js';

export interface SpectralDensity {
  /** Per run: the Ritz values of its Lanczos tridiagonal (the quadrature nodes). */
  nodes: number[][];
  /** Per run: the squared first components of T's eigenvectors (they sum to 1). */
  weights: number[][];
  grid: number[];
  /** The Gaussian-smoothed density on the grid, averaged over runs; integrates to 1. */
  density: number[];
  sigma: number;
}

/**
 * Stochastic Lanczos quadrature (Ghorbani, Krishnan, Xiao 2019; PyHessian): for each run, `steps` of
 * Lanczos from a normalised Rademacher vector, with full reorthogonalisation; the eigenpairs of the
 * tridiagonal T give a quadrature (nodes θ_i, weights τ_i²) of the spectral measure. The runs go
 * through the operator together, one batched product per step.
 */
export function lanczosQuadrature(operator: LinearOperator, runs: number, steps: number, gridPoints: number, random: () => number): SpectralDensity {
  const size = operator.size;
  steps = Math.min(steps, size);
  const bases: Float32Array[][] = Array.from({ length: runs }, () => {
    const z = rademacher(size, random);
    const norm = Math.sqrt(size);
    for (let i = 0; i < size; i++) z[i] /= norm;
    return [z];
  });
  const alphas: number[][] = bases.map(() => []);
  const betas: number[][] = bases.map(() => []);
  let active = bases.map((_, r) => r);
  for (let step = 0; step < steps && active.length; step++) {
    const packed = new Float32Array(active.length * size);
    active.forEach((r, d) => packed.set(bases[r][step], d * size));
    const products = applyInBlocks(operator, packed, active.length);
    active = active.filter((r, d) => {
      const w = products.slice(d * size, (d + 1) * size);
      const q = bases[r][step];
      const alpha = dot(q, w);
      alphas[r].push(alpha);
      subtractScaled(w, alpha, q);
      if (step > 0) subtractScaled(w, betas[r][step - 1], bases[r][step - 1]);
      orthogonalize(w, bases[r]);
      const beta = Math.sqrt(dot(w, w));
      // A vanishing beta: the Krylov space is invariant and the quadrature is exact with this many nodes.
      if (step === steps - 1 || beta < 1e-6 * Math.max(Math.abs(alpha), 1e-30)) return false;
      betas[r].push(beta);
      for (let i = 0; i < size; i++) w[i] /= beta;
      bases[r].push(w);
      return true;
    });
  }
  const nodes: number[][] = [];
  const weights: number[][] = [];
  alphas.forEach((alpha, r) => {
    const { values, firstComponents } = tridiagonalEigen(alpha, betas[r]);
    nodes.push(Array.from(values));
    weights.push(Array.from(firstComponents, (z) => z * z));
  });
  return { nodes, weights, ...smoothedDensity(nodes, weights, gridPoints) };
}

/**
 * The quadrature as a density: each node a Gaussian of width sigma (1% of the spectrum's span), on a
 * grid reaching 6 sigma past the extreme nodes, so that it integrates to 1 to within 1e-8.
 */
function smoothedDensity(nodes: number[][], weights: number[][], points: number): { grid: number[]; density: number[]; sigma: number } {
  const all = nodes.flat();
  const low = Math.min(...all);
  const high = Math.max(...all);
  const sigma = Math.max(high - low, 1e-6 * Math.max(1, Math.abs(low), Math.abs(high))) / 100;
  const from = low - 6 * sigma;
  const step = (high - low + 12 * sigma) / (points - 1);
  const grid = Array.from({ length: points }, (_, i) => from + i * step);
  const norm = 1 / (nodes.length * sigma * Math.sqrt(2 * Math.PI));
  const density = grid.map((x) => {
    let s = 0;
    nodes.forEach((run, r) => run.forEach((theta, i) => (s += weights[r][i] * Math.exp(-0.5 * ((x - theta) / sigma) ** 2))));
    return s * norm;
  });
  return { grid, density, sigma };
}
