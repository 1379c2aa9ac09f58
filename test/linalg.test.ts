import { describe, expect, it } from 'vitest';
import { combineUnit, orthogonalizeBlock, tridiagonalEigen } from '../src/compute/algorithms/linalg.js';
import { mulberry32 } from '../src/compute/initializers.js';

/** Float64 references written here, sharing nothing with linalg.ts: plain loops over whole vectors. */
const dot64 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const randomVectors = (count: number, size: number, random: () => number) =>
  Array.from({ length: count }, () => Float64Array.from({ length: size }, () => random() - 0.5));
/** Modified Gram-Schmidt in float64, then rounded to float32: an orthonormal basis to float32 precision. */
function orthonormal(count: number, size: number, random: () => number): Float32Array[] {
  const vectors = randomVectors(count, size, random);
  vectors.forEach((v, i) => {
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < i; j++) {
        const c = dot64(vectors[j], v);
        for (let e = 0; e < size; e++) v[e] -= c * vectors[j][e];
      }
    }
    const norm = Math.sqrt(dot64(v, v));
    for (let e = 0; e < size; e++) v[e] /= norm;
  });
  return vectors.map((v) => Float32Array.from(v));
}

// P not a multiple of the chunk (1024), so that the last partial chunk is covered.
describe.each([
  { size: 2500, basis: 7, block: 3 },
  { size: 1000, basis: 40, block: 1 },
])('blocked orthogonalisation, P = $size, basis $basis, block $block', ({ size, basis: m, block: b }) => {
  const random = mulberry32(11);
  const basis = orthonormal(m, size, random);
  // Candidates with a large component inside the basis: what Lanczos products look like.
  const inside = randomVectors(b, m, random);
  const candidates = randomVectors(b, size, random).map((v, d) => {
    const w = new Float32Array(size);
    for (let e = 0; e < size; e++) w[e] = 0.01 * v[e] + basis.reduce((s, q, i) => s + 10 * inside[d][i] * q[e], 0);
    return w;
  });

  it('leaves each vector orthogonal to the basis to float32 precision, and returns the coefficients removed', () => {
    const block = candidates.map((w) => Float32Array.from(w));
    const removed = orthogonalizeBlock(block, basis);
    block.forEach((w, d) => {
      const wNorm = Math.sqrt(dot64(w, w));
      for (const q of basis) expect(Math.abs(dot64(q, w))).toBeLessThan(1e-6 * wNorm + 1e-9);
      // The coefficients are those of the float64 projection of the original vector: <q_i, w_original>.
      basis.forEach((q, i) => expect(removed[d][i]).toBeCloseTo(dot64(q, candidates[d]), 4));
      // w_original = w + Q c, element by element.
      const rebuilt = Float64Array.from(w, (value, e) => value + basis.reduce((s, q, i) => s + removed[d][i] * q[e], 0));
      const scale = Math.sqrt(dot64(candidates[d], candidates[d]));
      for (let e = 0; e < size; e++) expect(Math.abs(rebuilt[e] - candidates[d][e])).toBeLessThan(1e-5 * scale);
    });
  });

  it('combines the basis into unit vectors Q y / ||Q y||', () => {
    const coefficients = randomVectors(b + 2, m, random);
    const combined = combineUnit(basis, coefficients, size);
    combined.forEach((x, r) => {
      const reference = Float64Array.from({ length: size }, (_, e) => basis.reduce((s, q, i) => s + coefficients[r][i] * q[e], 0));
      const norm = Math.sqrt(dot64(reference, reference));
      expect(Math.abs(Math.sqrt(dot64(x, x)) - 1)).toBeLessThan(1e-6);
      for (let e = 0; e < size; e++) expect(Math.abs(x[e] - reference[e] / norm)).toBeLessThan(1e-6);
    });
  });
});

describe('tridiagonal eigen-decomposition (the Gauss quadrature of stochastic Lanczos)', () => {
  it.each([1, 2, 7, 60])('n = %i: ascending eigenvalues whose squared first components reproduce the moments e1ᵀ Tᵏ e1', (n) => {
    const random = mulberry32(n);
    const d = Array.from({ length: n }, () => 4 * random() - 2);
    // One coupling of zero (n = 60): T splits, and the block without e1 gets weight 0.
    const e = Array.from({ length: n - 1 }, (_, i) => (i === 40 ? 0 : random() + 0.05));
    const { values, firstComponents } = tridiagonalEigen(d, e);
    for (let j = 1; j < n; j++) expect(values[j]).toBeGreaterThanOrEqual(values[j - 1]);
    const sum = (f: (j: number) => number) => Array.from({ length: n }, (_, j) => f(j)).reduce((a, b) => a + b, 0);
    expect(sum((j) => values[j])).toBeCloseTo(d.reduce((a, b) => a + b, 0), 10); // the trace
    expect(sum((j) => values[j] ** 2)).toBeCloseTo(sum((j) => d[j] ** 2) + 2 * e.reduce((a, b) => a + b * b, 0), 9); // ‖T‖²
    // Gauss quadrature with n nodes is exact for polynomials of degree < 2n: Σ_j z_j² λ_j^k = e1ᵀ Tᵏ e1.
    let v = Float64Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 0));
    for (let k = 0; k < Math.min(2 * n, 12); k++) {
      const moment = v[0];
      const quadrature = sum((j) => firstComponents[j] ** 2 * values[j] ** k);
      expect(Math.abs(quadrature - moment)).toBeLessThan(1e-10 * Math.max(1, Math.abs(moment)) * 3 ** k);
      v = Float64Array.from(v, (_, i) => d[i] * v[i] + (i > 0 ? e[i - 1] * v[i - 1] : 0) + (i < n - 1 ? e[i] * v[i + 1] : 0));
    }
  });
});
