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
 * Removes from w its components along the orthonormal `basis`, twice (classical Gram-Schmidt run twice
 * is orthogonal to working precision, which float32 products need: one pass lets Lanczos lose
 * orthogonality and report ghost copies of converged eigenvalues). Returns the coefficients removed.
 */
export function orthogonalize(w: Vector, basis: readonly Vector[]): Float64Array {
  const removed = new Float64Array(basis.length);
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < basis.length; i++) {
      const c = dot(basis[i], w);
      removed[i] += c;
      subtractScaled(w, c, basis[i]);
    }
  }
  return removed;
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
