/**
 * The Hessian engine: exact loss, gradient and full Hessian over all parameters of a model (a graph of
 * layers, see spec.ts), flattened into one vector; pipeline.ts picks the path per request. Knows nothing of HTTP nor of the wire formats (src/schemas turns
 * those into its requests); the service calls it from worker threads.
 */
import type { z } from 'zod';
import { SpecError } from './errors.js';

export { initBackend, activeBackend, configureNativeRuntime, defaultIntraOpThreads, nativeLoadLockBuffer, releaseNativeLoadLockOf, shareNativeLoadLock, type BackendInfo, type BackendName } from './backend.js';
export { hessianRows, hessianTimes, planRowBlocks, type RowBlock } from './curvature.js';
export { estimateCost, type CostEstimate, type CostShape } from './cost.js';
export { StructuredAssembly } from './assembly/index.js';
export { SpecError, NumericalError, type FieldIssue } from './errors.js';
export { PreparedModel } from './model.js';
export { inlineHessian, inlineModel, type InlineResult } from './inline/index.js';
export { allParameters, selectParameters, totalSize, type ParameterTensor } from './parameters.js';
export { denseStack, engineRequest, firstNonDense, normalizeLoss, type DenseLayerSpec, type DenseRequest } from './dense/request.js';
export type { EngineRequest, GraphModel } from './spec.js';
export {
  costShape,
  DEFAULT_MEMORY_BUDGET_BYTES,
  hessianOf,
  planHessian,
  planRequest,
  prepareRequest,
  productCost,
  requestBytes,
  rowSource,
  symmetricColumns,
  type ComputeOptions,
  type HessianMethod,
  type HessianPlan,
  type HessianResult,
  type HessianSummary,
  type PlacedTensor,
  type PreparedRequest,
  type ProductMethod,
  type RequestPlan,
  type RowSource,
  type Span,
} from './pipeline.js';
export { transposedTiles, type Tile } from './tiles.js';

/** A zod failure as a SpecError whose issues name their fields ("model.layers[1].kernel"). */
export const specError = (error: z.ZodError): SpecError =>
  new SpecError(error.issues.flatMap(unionIssues).map((i) => ({ path: formatPath(i.path), message: issueMessage(i.path, i.message) })));

type Issue = { path: PropertyKey[]; message: string; code?: string; errors?: Issue[][] };
/**
 * A union that failed (e.g. nested arrays or a binary tensor; a name or its object form) reports the
 * issues of the one option whose type matched (the others fail at their root on the type or the value),
 * so that they name the bad field, e.g. `loss.type: "hubber" is not a known loss`; else its own.
 */
function unionIssues(issue: Issue): Issue[] {
  if (issue.code !== 'invalid_union' || !issue.errors) return [issue];
  const typeMatched = issue.errors.filter((option) => !option.some((i) => (i.code === 'invalid_type' || i.code === 'invalid_value') && i.path.length === 0));
  if (typeMatched.length !== 1) return [issue];
  return typeMatched[0].flatMap((i) => unionIssues({ ...i, path: [...issue.path, ...i.path] }));
}

/** ["model","layers",1,"kernel"] -> "model.layers[1].kernel" */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, key) => (typeof key === 'number' ? `${s}[${key}]` : s ? `${s}.${String(key)}` : String(key)), '');
}

/** Messages from the consistency checks already name their field; zod's own do not. */
const issueMessage = (path: readonly PropertyKey[], message: string) => {
  const where = formatPath(path);
  return !where || message.startsWith(where) ? message : `${where}: ${message}`;
};

