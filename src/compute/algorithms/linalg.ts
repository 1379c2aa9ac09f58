/** Small host-side float64 linear algebra for the algorithms on top of the operators. */

export type Vector = Float32Array | Float64Array;

export function dot(a: Vector, b: Vector): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** y -= c x, in place. */
export function subtractScaled(y: Vector, c: number, x: Vector): void {
  for (let i = 0; i < y.length; i++) y[i] -= c * x[i];
}

/**
 * Elements of P per chunk: the block's chunks and a few basis vectors' chunks stay in the L1/L2 cache
 * while every basis vector passes over them, so that the basis, which is far larger than any cache
 * (64 vectors of P = 1.86 M floats is 480 MB), streams from memory a few times per block, not a few
 * times per vector of the block.
 */
const CHUNK = 1024;

/**
 * Removes from every w of `block` its components along the orthonormal `basis`, in place, and returns
 * per w the coefficients removed. Classical Gram-Schmidt twice (CGS2): orthogonal to working precision,
 * which float32 products need (one pass lets Lanczos lose orthogonality and report ghost copies of
 * converged eigenvalues). As matrix products over chunks of P, with float64 sums: C1 = Qᵀ W, then per
 * chunk W -= Q C1 followed at once by that chunk's share of C2 = Qᵀ W, then W -= Q C2. The basis is
 * read three times for the whole block, where one vector at a time read it four times per vector.
 */
export function orthogonalizeBlock(block: readonly Vector[], basis: readonly Vector[]): Float64Array[] {
  const m = basis.length;
  const removed = block.map(() => new Float64Array(m));
  if (!m || !block.length) return removed;
  const size = block[0].length;
  const second = block.map(() => new Float64Array(m));
  for (let from = 0; from < size; from += CHUNK) {
    const to = Math.min(size, from + CHUNK);
    addProjections(removed, block, basis, from, to);
  }
  for (let from = 0; from < size; from += CHUNK) {
    const to = Math.min(size, from + CHUNK);
    subtractCombinations(block, basis, removed, from, to);
    addProjections(second, block, basis, from, to);
  }
  for (let from = 0; from < size; from += CHUNK) subtractCombinations(block, basis, second, from, Math.min(size, from + CHUNK));
  removed.forEach((c, d) => {
    for (let i = 0; i < m; i++) c[i] += second[d][i];
  });
  return removed;
}

/**
 * coefficients[d][i] += <basis[i], block[d]> over elements [from, to). Four basis vectors per sweep of
 * the chunk: each element of w is loaded once for four products (the loop is bound by loads, not sums).
 */
function addProjections(coefficients: Float64Array[], block: readonly Vector[], basis: readonly Vector[], from: number, to: number): void {
  const m = basis.length;
  for (let d = 0; d < block.length; d++) {
    const w = block[d];
    const c = coefficients[d];
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      const q0 = basis[i];
      const q1 = basis[i + 1];
      const q2 = basis[i + 2];
      const q3 = basis[i + 3];
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let j = from; j < to; j++) {
        const x = w[j];
        s0 += q0[j] * x;
        s1 += q1[j] * x;
        s2 += q2[j] * x;
        s3 += q3[j] * x;
      }
      c[i] += s0;
      c[i + 1] += s1;
      c[i + 2] += s2;
      c[i + 3] += s3;
    }
    for (; i < m; i++) {
      const q = basis[i];
      let s = 0;
      for (let j = from; j < to; j++) s += q[j] * w[j];
      c[i] += s;
    }
  }
}

/** block[d] -= Σ_i coefficients[d][i] basis[i] over elements [from, to), four basis vectors per store of w. */
function subtractCombinations(block: readonly Vector[], basis: readonly Vector[], coefficients: Float64Array[], from: number, to: number): void {
  const m = basis.length;
  for (let d = 0; d < block.length; d++) {
    const w = block[d];
    const c = coefficients[d];
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      const q0 = basis[i];
      const q1 = basis[i + 1];
      const q2 = basis[i + 2];
      const q3 = basis[i + 3];
      const c0 = c[i];
      const c1 = c[i + 1];
      const c2 = c[i + 2];
      const c3 = c[i + 3];
      for (let j = from; j < to; j++) w[j] -= c0 * q0[j] + c1 * q1[j] + c2 * q2[j] + c3 * q3[j];
    }
    for (; i < m; i++) {
      const q = basis[i];
      const ci = c[i];
      for (let j = from; j < to; j++) w[j] -= ci * q[j];
    }
  }
}

/** orthogonalizeBlock for one vector. */
export const orthogonalize = (w: Vector, basis: readonly Vector[]): Float64Array => orthogonalizeBlock([w], basis)[0];

/**
 * x_r = Q y_r for each of `coefficients` (float64 sums, chunk by chunk as orthogonalizeBlock reads the
 * basis once for all of them), each normalised to unit length.
 */
export function combineUnit(basis: readonly Vector[], coefficients: readonly Float64Array[], size: number): Float32Array[] {
  const out = coefficients.map(() => new Float32Array(size));
  const sums = coefficients.map(() => new Float64Array(CHUNK));
  for (let from = 0; from < size; from += CHUNK) {
    const to = Math.min(size, from + CHUNK);
    for (const sum of sums) sum.fill(0);
    for (let i = 0; i < basis.length; i++) {
      const q = basis[i];
      for (let r = 0; r < coefficients.length; r++) {
        const c = coefficients[r][i];
        const sum = sums[r];
        for (let j = from; j < to; j++) sum[j - from] += c * q[j];
      }
    }
    sums.forEach((sum, r) => out[r].set(sum.subarray(0, to - from), from));
  }
  for (const x of out) {
    const norm = Math.sqrt(dot(x, x)) || 1;
    for (let j = 0; j < size; j++) x[j] /= norm;
  }
  return out;
}

/** Random signs ±1: Hutchinson's and the quadrature's probe vectors. */
export function rademacher(size: number, random: () => number): Float32Array {
  const v = new Float32Array(size);
  for (let i = 0; i < size; i++) v[i] = random() < 0.5 ? -1 : 1;
  return v;
}

/**
 * Eigen-decomposition of a symmetric n x n matrix (row-major, float64) by cyclic Jacobi rotations:
 * simple and accurate to machine precision; the matrices here (Lanczos' projections) are at most a
 * few hundred wide. Returns eigenvalues ascending and the eigenvectors as columns of `vectors`.
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const x = a[i * n + j] * a[i * n + j];
        total += x;
        if (i !== j) off += x;
      }
    }
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[x * n + x] - a[y * n + y]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors };
}

/**
 * Eigenvalues of the symmetric tridiagonal matrix with `diagonal` (n) and `offDiagonal` (n - 1), and the
 * first component of each unit eigenvector: what Gauss quadrature from a Lanczos tridiagonal needs (its
 * nodes and, squared, its weights). Implicit QL with Wilkinson shifts (as LAPACK's steqr / Numerical
 * Recipes' tqli), its rotations applied to the first row of the eigenvector matrix only: O(n²), where
 * the dense Jacobi rotations of symmetricEigen take O(n³) per sweep (minutes at 1000 steps).
 * Eigenvalues ascending.
 */
export function tridiagonalEigen(diagonal: ArrayLike<number>, offDiagonal: ArrayLike<number>): { values: Float64Array; firstComponents: Float64Array } {
  const n = diagonal.length;
  const d = Float64Array.from(diagonal);
  const e = new Float64Array(n); // e[i] couples i and i + 1; e[n - 1] = 0
  for (let i = 0; i < n - 1; i++) e[i] = offDiagonal[i];
  const z = new Float64Array(n); // the first row of the eigenvector matrix, from the identity's
  if (n) z[0] = 1;
  for (let l = 0; l < n; l++) {
    for (let iteration = 0; ; iteration++) {
      let m = l;
      while (m < n - 1 && Math.abs(e[m]) > Number.EPSILON * (Math.abs(d[m]) + Math.abs(d[m + 1]))) m++;
      if (m === l) break;
      if (iteration === 100) throw new Error('tridiagonal QL did not converge');
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      for (; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // Deflation: the rotation's sub-problem has split; start the sweep again.
          d[i + 1] -= p;
          e[m] = 0;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        const zi = z[i + 1];
        z[i + 1] = s * z[i] + c * zi;
        z[i] = c * z[i] - s * zi;
      }
      if (r === 0 && i >= l) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a] - d[b]);
  return { values: Float64Array.from(order, (i) => d[i]), firstComponents: Float64Array.from(order, (i) => z[i]) };
}
