import type { Which } from '../algorithms/lanczos.js';
import type { MatrixKind } from '../operators/index.js';

/** What /v1/curvature asks of the engine besides the model (validated by src/schemas/curvature.ts). */
export type CurvatureQuery =
  | { quantity: 'hvp'; matrix: MatrixKind; vectors: number[][] }
  | { quantity: 'ggn' | 'fisher' }
  | { quantity: 'diagonal'; matrix: MatrixKind }
  | { quantity: 'eigenvalues'; matrix: MatrixKind; k: number; which: Which; vectors: boolean; tolerance: number; maxIterations?: number; seed: number }
  | { quantity: 'trace'; matrix: MatrixKind; method: 'exact' | 'hutchinson'; samples: number; seed: number }
  | { quantity: 'density'; matrix: MatrixKind; runs: number; steps: number; gridPoints: number; seed: number };

export type Quantity = CurvatureQuery['quantity'];

/** The quantities whose answer is a P x P matrix (QuantityResult.matrix). */
export const isMatrixQuantity = (quantity: Quantity): quantity is 'ggn' | 'fisher' => quantity === 'ggn' || quantity === 'fisher';

/** Bytes a query holds while it waits (hvp's directions, kept as JS numbers: 8 bytes each); what MAX_QUEUED_BYTES counts beside the request's tensors. */
export const queryBytes = (query: CurvatureQuery): number => (query.quantity === 'hvp' ? query.vectors.reduce((n, v) => n + 8 * v.length, 0) : 0);

/** A quantity's answer: plain fields, float32 arrays (served as JSON numbers) and, for matrices, P x P. */
export interface QuantityResult {
  fields: Record<string, number | boolean | number[] | number[][] | Float32Array | Float32Array[] | null>;
  /** The dense matrix of 'ggn' and 'fisher', P x P row-major. */
  matrix?: Float32Array;
}

/** Memory the Krylov bases of eigenvalues and density may take (vectors of P float32). */
export const KRYLOV_BUDGET_BYTES = 512 * 2 ** 20;

/** Largest Lanczos basis for eigenvalues: 200 vectors, fewer when P is large. */
export const maxEigenBasis = (size: number): number => Math.max(1, Math.min(200, Math.floor(KRYLOV_BUDGET_BYTES / (4 * size))));

/** Fillings of the eigenvalue basis (one, then restarts) that a request gets unless it sets maxIterations. */
const EIGEN_FILLINGS = 5;

/** Block Lanczos steps of an eigenvalue request: its maxIterations, else EIGEN_FILLINGS fillings of the basis. */
export const eigenIterations = (size: number, k: number, maxIterations?: number): number =>
  maxIterations ?? EIGEN_FILLINGS * Math.max(1, Math.ceil(maxEigenBasis(size) / k));

/**
 * The most operator products a quantity runs: what a job's progress counts towards. 0 for those made
 * without products (the exact diagonal, and the exact trace which sums it).
 */
export function productBudget(query: CurvatureQuery, size: number): number {
  switch (query.quantity) {
    case 'hvp':
      return query.vectors.length;
    case 'ggn':
    case 'fisher':
      return size; // one product per unit vector
    case 'diagonal':
      return 0;
    case 'eigenvalues':
      return eigenIterations(size, query.k, query.maxIterations) * query.k + query.k; // the last k: the residuals
    case 'trace':
      return query.method === 'exact' ? 0 : query.samples;
    case 'density':
      return query.runs * Math.min(query.steps, size);
  }
}
