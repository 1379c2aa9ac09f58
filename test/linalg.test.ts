import { describe, expect, it } from 'vitest';
import { combineUnit, orthogonalizeBlock } from '../src/compute/algorithms/linalg.js';
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
