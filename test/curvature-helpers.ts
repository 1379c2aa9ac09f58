import { readFileSync } from 'node:fs';

export interface MatrixReference {
  matrix: number[][];
  diagonal: number[];
  trace: number;
  eigenvalues: number[];
  eigenvectors: number[][];
  products: number[][];
}

export interface CurvatureCase {
  name: string;
  request: any;
  expected: { size: number; vectors: number[][]; hessian: MatrixReference; ggn: MatrixReference; fisher: MatrixReference };
}

/** Float64 PyTorch references made by test/fixtures/generate_curvature.py. */
export const curvatureCases = (): CurvatureCase[] =>
  JSON.parse(readFileSync(new URL('./fixtures/curvature.json', import.meta.url), 'utf8')).cases;

/**
 * Whether a symmetric matrix is positive semi-definite up to `tolerance` (relative to its largest
 * entry): a float64 Cholesky of M + tolerance·max|M|·I succeeds. Written here, sharing nothing with src/.
 */
export function isPositiveSemiDefinite(m: ArrayLike<number>, n: number, tolerance: number): boolean {
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale = Math.max(scale, Math.abs(m[i]));
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = m[i * n + j] + (i === j ? tolerance * scale : 0);
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      if (i === j) {
        if (s <= 0) return false;
        l[i * n + i] = Math.sqrt(s);
      } else l[i * n + j] = s / l[j * n + j];
    }
  }
  return true;
}
