/**
 * The engine for in-process callers (tests, benchmarks, scripts): a request body as the API takes it,
 * validated, then computed whole in this thread. The service itself validates in its routes and
 * computes on its worker pool.
 */
import { engineRequest, hessianOf, type ComputeOptions, type EngineRequest, type HessianResult } from './compute/index.js';
import { parseRequest } from './schemas/model.js';

export { parseRequest } from './schemas/model.js';

/** A request body validated (a SpecError names each bad field) as the engine's request. */
export const parseEngineRequest = (body: unknown): EngineRequest => engineRequest(parseRequest(body));

/** Validates `body`, then computes loss, gradient and Hessian. */
export async function computeHessian(body: unknown, options: ComputeOptions = {}): Promise<HessianResult> {
  return hessianOf(parseEngineRequest(body), options);
}
