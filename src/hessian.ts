/**
 * The engine for in-process callers (tests, benchmarks, scripts): a request body as the API takes it
 * (any model format), imported, then computed whole in this thread. The service itself imports in its
 * routes and computes on its worker pool.
 */
import { hessianOf, type ComputeOptions, type HessianResult } from './compute/index.js';
import { importRequest } from './schemas/import/index.js';

/** A dense-stack body validated for the dense path's PreparedModel (a SpecError names each bad field). */
export { parseRequest } from './schemas/model.js';

/** A request body in any model format as the engine's request (a SpecError names each problem's field). */
export const parseEngineRequest = importRequest;

/** Imports `body`, then computes loss, gradient and Hessian. */
export async function computeHessian(body: unknown, options: ComputeOptions = {}): Promise<HessianResult> {
  return hessianOf(importRequest(body), options);
}
