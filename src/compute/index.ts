/**
 * The Hessian engine: exact loss, gradient and full Hessian over all parameters of a sequential dense
 * model, flattened into one vector. Knows nothing of HTTP nor of the wire formats (src/schemas turns
 * those into its requests); the service calls it from worker threads.
 */
import type { z } from 'zod';
import { activeBackend, initBackend, type BackendInfo } from './backend.js';
import { structuredCost } from './assembly/cost.js';
import { StructuredAssembly } from './assembly/index.js';
import { estimateCost, layerShapes, type CostEstimate, type CostShape } from './cost.js';
import { finiteRows, hessianRows, planRowBlocks, type RowBlock } from './curvature.js';
import type { DenseRequest } from './dense/request.js';
import { SpecError } from './errors.js';
import { PreparedModel } from './model.js';
import { allParameters, selectParameters, type ParameterTensor } from './parameters.js';

export { initBackend, activeBackend, configureNativeRuntime, defaultIntraOpThreads, type BackendInfo, type BackendName } from './backend.js';
export { hessianRows, hessianTimes, planRowBlocks, type RowBlock } from './curvature.js';
export { estimateCost, type CostEstimate, type CostShape } from './cost.js';
export { StructuredAssembly } from './assembly/index.js';
export { SpecError, NumericalError, type FieldIssue } from './errors.js';
export { PreparedModel } from './model.js';
export { allParameters, selectParameters, totalSize, type ParameterTensor } from './parameters.js';
export { denseStack, engineRequest, firstNonDense, normalizeLoss, type DenseLayerSpec, type DenseRequest } from './dense/request.js';
export type { EngineRequest, GraphModel } from './spec.js';

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

export interface HessianSummary {
  parameters: ParameterTensor[];
  size: number;
  loss: number;
  gradient: Float32Array;
}

export interface HessianResult extends HessianSummary {
  /** P x P row-major; absent when rows went to onRows instead. */
  hessian?: Float32Array;
  meta: BackendInfo & { elapsedMs: number; method: HessianMethod };
}

export interface ComputeOptions {
  blockSize?: number;
  /** Forces a path (tests compare them); by default the engine picks one per model (see rowSource). */
  method?: HessianMethod;
  /** Receives each row block as it is ready ([count x P] rows from `row`); the matrix is then not kept. */
  onRows?: (row: number, count: number, rows: Float32Array) => void;
}

/** Computes the whole result in this thread (the service's small lane; the jobs spread row blocks over workers instead). */
export async function hessianOf(request: DenseRequest, options: ComputeOptions = {}): Promise<HessianResult> {
  const started = performance.now();
  const backend = activeBackend() ?? (await initBackend());
  const model = new PreparedModel(request);
  let source: RowSource | null = null;
  try {
    const plan = planHessian(costShape(model.request), DEFAULT_MEMORY_BUDGET_BYTES, options.method);
    source = rowSource(model, plan.method);
    const hessian = options.onRows ? undefined : new Float32Array(model.size * model.size);
    for (const block of planRowBlocks(model.parameters, options.blockSize ?? plan.blockSize, plan.method === 'structured')) {
      const rows = source.rows(block, false);
      if (hessian) hessian.set(rows, block.row * model.size);
      else options.onRows!(block.row, block.count, rows);
    }
    const { parameters, size, loss, gradient } = model;
    const meta = { ...backend, elapsedMs: performance.now() - started, method: source.method };
    return { parameters, size, loss, gradient, hessian, meta };
  } finally {
    source?.dispose();
    model.dispose();
  }
}

/**
 * How the rows are computed: 'structured' assembles them from per-example factors in GEMMs over the
 * batch (compute/assembly), 'rOperator' runs Hessian-vector products with unit directions.
 */
export type HessianMethod = 'structured' | 'rOperator';

/** A cost estimate together with the path it is for. */
export type HessianPlan = CostEstimate & { method: HessianMethod };

/** A worker's memory budget when none is given (the service passes MAX_WORKER_MEMORY_MB). */
export const DEFAULT_MEMORY_BUDGET_BYTES = 2048 * 2 ** 20;

/** The sizes a request's cost depends on, read from its structure (no tensor is made). */
export function costShape(request: DenseRequest): CostShape {
  return {
    batch: request.data.x.rows,
    layers: layerShapes(allParameters(request.model)),
    selected: selectParameters(request.model, request.wrt),
    dataValues: request.data.x.values.length + request.data.y.values.length,
  };
}

/**
 * The path for a request, from sizes alone: structured whenever its factors and a block fit the
 * budget (every layer is dense with a rule-defined activation, so it is exact for all of them), the
 * R-operator otherwise; `method` forces one.
 */
export function planHessian(shape: CostShape, budgetBytes: number, method?: HessianMethod): HessianPlan {
  const structured = method === 'rOperator' ? null : structuredCost(shape, budgetBytes, method === 'structured');
  return structured ? { ...structured, method: 'structured' } : { ...estimateCost(shape, budgetBytes), method: 'rOperator' };
}

/** Computes row blocks of one prepared model by one method; holds that method's state until dispose(). */
export interface RowSource {
  readonly method: HessianMethod;
  /** Rows [block.count x P]; with upperOnly only the columns of the block's layer and above. */
  rows(block: RowBlock, upperOnly: boolean): Float32Array;
  dispose(): void;
}

export function rowSource(model: PreparedModel, method: HessianMethod): RowSource {
  if (method === 'rOperator') return { method, rows: (block, upperOnly) => hessianRows(model, block, upperOnly), dispose: () => {} };
  const assembly = new StructuredAssembly(model);
  return { method, rows: (block, upperOnly) => finiteRows(assembly.rows(block, upperOnly), block), dispose: () => assembly.dispose() };
}


