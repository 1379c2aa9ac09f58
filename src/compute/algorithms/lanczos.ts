import { applyInBlocks, type LinearOperator } from '../operators/index.js';
import { combineUnit, dot, orthogonalize, orthogonalizeBlock, subtractScaled, symmetricEigen, type Vector } from './linalg.js';

export type Which = 'largest' | 'smallest' | 'largestMagnitude';

export interface EigenOptions {
  k: number;
  which: Which;
  /** Stop when every wanted Ritz pair's residual is below tolerance * max |Ritz value|. */
  tolerance: number;
  /** Largest Krylov basis (vectors of P floats kept in memory); a full basis is restarted, not grown. */
  maxBasis: number;
  /** Most block steps in all, restarts included (each step is `block` operator products). */
  maxIterations: number;
  /** Directions per block (block Lanczos); 1 is plain Lanczos. */
  block: number;
  random: () => number;
}

export interface EigenResult {
  eigenvalues: number[];
  /** Unit eigenvectors, one Float32Array of P per eigenvalue. */
  eigenvectors: Float32Array[];
  /** ||M x - λ x|| of each returned pair, from a final product with M. */
  residuals: number[];
  /** Block steps taken (operator products = iterations * block + k). */
  iterations: number;
  converged: boolean;
}

/**
 * Block Lanczos with full reorthogonalisation and thick restarts: the Krylov basis Q grows a block at a
 * time, every new block orthogonalised (twice) against all of Q, which also gives T = Q^T M Q exactly.
 * That host-side work is done as blocked matrix products (orthogonalizeBlock, combineUnit): at P in the
 * millions the basis does not fit any cache, and reading it once per block instead of once per vector
 * is what keeps it from costing as much as the products themselves.
 * Ritz pairs of T (Rayleigh-Ritz) approximate M's extreme eigenpairs; the residual of a Ritz pair is
 * ||R y_last|| with R the new block before normalisation, so convergence is checked without extra
 * products. When the basis is full (memory, not convergence, ended it: P in the millions leaves room
 * for a few dozen vectors), it restarts from its best Ritz vectors (Krylov-Schur): M Q = Q T + R E^T
 * gives M x = θ x + R (E^T y) for each kept x = Q y, so T restarts as diag(θ) and R continues the
 * search, with nothing recomputed and the basis within maxBasis.
 */
export function lanczosEigen(operator: LinearOperator, options: EigenOptions): EigenResult {
  const size = operator.size;
  const k = Math.min(options.k, size);
  const maxBasis = Math.max(Math.min(options.maxBasis, size), Math.min(k, size));
  const block = Math.max(1, Math.min(options.block, maxBasis));
  // Kept at a restart: the wanted pairs and as many more as leave room for several blocks to grow.
  const kept = Math.min(maxBasis - block, Math.max(k, Math.floor(maxBasis / 2)));
  let basis: Float32Array[] = [];
  let projections: Float64Array[] = []; // column c: <q_i, M q_c> for i <= c
  let current = nextBlock(basis, Array.from({ length: block }, () => randomVector(size, options.random)), size, options.random);
  let iterations = 0;
  let lastChecked = 0;
  let ritz: Ritz | null = null;
  let converged = false;
  while (current.length && iterations < options.maxIterations) {
    iterations++;
    const products = applyAll(operator, current);
    const start = basis.length;
    basis.push(...current);
    projections.push(...orthogonalizeBlock(products, basis));
    const full = maxBasis - basis.length < Math.min(block, size - basis.length);
    const last = iterations >= options.maxIterations;
    if (full || last || basis.length >= lastChecked * 1.2 + block || basis.length >= size) {
      lastChecked = basis.length;
      ritz = rayleighRitz(projections, basis.length, products, start, k, options.which);
      if (ritz.estimatedResiduals.every((r) => r <= options.tolerance * ritz!.scale)) {
        converged = true;
        break;
      }
    }
    if (last || basis.length >= size || (full && kept < k)) break;
    if (full) {
      const restart = rayleighRitz(projections, basis.length, [], basis.length, kept, options.which);
      basis = combineUnit(basis, restart.coefficients, size);
      projections = restart.values.map((value, c) => Float64Array.from({ length: c + 1 }, (_, i) => (i === c ? value : 0)));
      lastChecked = basis.length;
      ritz = null;
    }
    // The products were orthogonalised against the whole basis just above (the kept Ritz vectors span part of it).
    current = nextBlock(basis, products.slice(0, Math.min(products.length, maxBasis - basis.length)), size, options.random, true);
  }
  if (!ritz || ritz.coefficients[0].length !== basis.length) {
    // No check after the last step: the Krylov space became invariant, so its Ritz pairs are exact.
    ritz = rayleighRitz(projections, basis.length, [], basis.length, k, options.which);
    converged = true;
  }
  const eigenvectors = combineUnit(basis, ritz.coefficients, size);
  const products = applyAll(operator, eigenvectors);
  const residuals = eigenvectors.map((x, i) => residualNorm(products[i], x, ritz!.values[i]));
  return { eigenvalues: ritz.values, eigenvectors, residuals, iterations, converged };
}

interface Ritz {
  values: number[];
  coefficients: Float64Array[];
  estimatedResiduals: number[];
  scale: number;
}

function rayleighRitz(projections: Float64Array[], n: number, lastResiduals: Float32Array[], lastStart: number, k: number, which: Which): Ritz {
  const t = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = 0; i <= c; i++) {
      // <q_i, M q_c> for i <= c, from the orthogonalisation of M q_c; T is symmetric.
      const v = projections[c][i];
      t[i * n + c] = v;
      t[c * n + i] = v;
    }
  }
  const { values, vectors } = symmetricEigen(t, n);
  const order = Array.from({ length: n }, (_, i) => i);
  if (which === 'largest') order.reverse();
  if (which === 'largestMagnitude') order.sort((a, b) => Math.abs(values[b]) - Math.abs(values[a]));
  const chosen = order.slice(0, Math.min(k, n));
  const gram = lastResiduals.map((r) => lastResiduals.map((s) => dot(r, s)));
  const coefficients = chosen.map((j) => Float64Array.from({ length: n }, (_, i) => vectors[i * n + j]));
  const estimatedResiduals = coefficients.map((y) => {
    let s = 0;
    gram.forEach((row, a) => row.forEach((g, b) => (s += y[lastStart + a] * g * y[lastStart + b])));
    return Math.sqrt(Math.max(s, 0));
  });
  const scale = Math.max(...Array.from(values, Math.abs), Number.MIN_VALUE);
  return { values: chosen.map((j) => values[j]), coefficients, estimatedResiduals, scale };
}

/**
 * The next orthonormal block from the candidates: each is orthogonalised against the basis (unless
 * `orthogonal`: the residuals of the last products already are) and the block so far; one that
 * vanishes (the Krylov space is invariant along it) is replaced by a random direction, so the search
 * goes on in the complement.
 */
function nextBlock(basis: readonly Float32Array[], candidates: Vector[], size: number, random: () => number, orthogonal = false): Float32Array[] {
  const block: Float32Array[] = [];
  for (const candidate of candidates) {
    for (let attempt = 0; attempt < 3 && basis.length + block.length < size; attempt++) {
      const w = attempt === 0 ? Float32Array.from(candidate) : randomVector(size, random);
      const before = Math.sqrt(dot(w, w));
      if (attempt > 0 || !orthogonal) orthogonalize(w, basis);
      orthogonalize(w, block);
      const norm = Math.sqrt(dot(w, w));
      if (norm > 1e-5 * before && norm > 0) {
        for (let i = 0; i < size; i++) w[i] /= norm;
        block.push(w);
        break;
      }
    }
  }
  return block;
}

function randomVector(size: number, random: () => number): Float32Array {
  const v = new Float32Array(size);
  for (let i = 0; i < size; i++) v[i] = random() - 0.5;
  return v;
}

function applyAll(operator: LinearOperator, vectors: readonly Float32Array[]): Float32Array[] {
  const size = operator.size;
  const packed = new Float32Array(vectors.length * size);
  vectors.forEach((v, d) => packed.set(v, d * size));
  const products = applyInBlocks(operator, packed, vectors.length);
  return vectors.map((_, d) => products.slice(d * size, (d + 1) * size));
}

function residualNorm(product: Float32Array, x: Float32Array, value: number): number {
  const r = Float64Array.from(product);
  subtractScaled(r, value, x);
  return Math.sqrt(dot(r, r));
}
