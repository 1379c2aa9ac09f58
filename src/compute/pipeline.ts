/**
 * One pipeline for every request: the engine's EngineRequest in; a plan (the path and its cost, from
 * sizes alone, before any tensor exists); the request prepared on its batch; its Hessian rows. A dense
 * stack (dense/request.ts) takes the dense paths, 'structured' or 'rOperator', at their speed; any
 * other graph the graph engine, 'graph'.
 */
import { activeBackend, initBackend, type BackendInfo } from './backend.js';
import { structuredCost } from './assembly/cost.js';
import { ChunkedAssembly } from './assembly/chunked.js';
import { firstOwnRow, StructuredAssembly } from './assembly/index.js';
import { estimateCost, layerShapes, type CostEstimate, type CostShape } from './cost.js';
import { hessianRows, planRowBlocks, type RowBlock } from './curvature.js';
import { denseStack, type DenseRequest } from './dense/request.js';
import { graphCost, graphStructure, PreparedGraph } from './graph/index.js';
import { PreparedModel } from './model.js';
import { allParameters, selectParameters, totalSize } from './parameters.js';
import type { EngineRequest } from './spec.js';

/**
 * How the rows are computed: 'structured' assembles them from per-example factors in GEMMs over the
 * batch (compute/assembly), 'rOperator' runs Hessian-vector products with unit directions (both for
 * dense stacks), 'graph' is the graph engine's R-operator for any model.
 */
export type HessianMethod = 'structured' | 'rOperator' | 'graph';
type DenseMethod = Exclude<HessianMethod, 'graph'>;

/** A cost estimate together with the path it is for (and on the structured path, any batch chunk of its factors). */
export type HessianPlan = CostEstimate & { method: HessianMethod; batchChunk?: number };

/** One parameter tensor placed in the result's flat vector (after any `wrt` selection), whichever path computes it. */
export interface PlacedTensor {
  /** "<layer name>/<weight name>". */
  name: string;
  /** Index of its layer (graph node) in the model: a tensor's columns of lower layers are filled by symmetry. */
  layer: number;
  shape: number[];
  size: number;
  offset: number;
  /** On the dense path, 'kernel' or 'bias' (its structured row blocks are whole kernel rows). */
  kind?: string;
}

/** A plan with what admission reads from the model: the tensors of the matrix, the model's size, the batch. */
export interface RequestPlan extends HessianPlan {
  /** The tensors the matrix is over, in order (the `wrt` selection, or all). */
  parameters: PlacedTensor[];
  /** Every trainable parameter of the model (what MAX_MODEL_PARAMETERS counts). */
  modelSize: number;
  batch: number;
}

/** A worker's memory budget when none is given (the service passes MAX_WORKER_MEMORY_MB). */
export const DEFAULT_MEMORY_BUDGET_BYTES = 2048 * 2 ** 20;

/** The sizes a dense request's cost depends on, read from its structure (no tensor is made). */
export function costShape(request: DenseRequest): CostShape {
  return {
    batch: request.data.x.rows,
    layers: layerShapes(allParameters(request.model)),
    selected: selectParameters(request.model, request.wrt),
    dataValues: request.data.x.values.length + request.data.y.values.length,
  };
}

/**
 * The dense path for a request, from sizes alone: structured whenever its factors and a block fit the
 * budget (every layer is dense with a rule-defined activation, so it is exact for all of them), the
 * R-operator otherwise; `method` forces one.
 */
export function planHessian(shape: CostShape, budgetBytes: number, method?: DenseMethod): HessianPlan {
  const structured = method === 'rOperator' ? null : structuredCost(shape, budgetBytes, method === 'structured');
  return structured ? { ...structured, method: 'structured' } : { ...estimateCost(shape, budgetBytes), method: 'rOperator' };
}

/**
 * The path and cost of any request, from its structure alone; `method` forces a path ('graph' also
 * takes a dense stack). Throws SpecError when the model cannot be computed as given.
 */
export function planRequest(request: EngineRequest, budgetBytes: number, method?: HessianMethod): RequestPlan {
  const dense = method === 'graph' ? null : denseStack(request);
  if (!dense) {
    const { all, selected } = graphStructure(request);
    return { ...graphCost(request, budgetBytes), method: 'graph', parameters: selected, modelSize: totalSize(all), batch: request.data.x.shape[0] };
  }
  const shape = costShape(dense);
  const plan = planHessian(shape, budgetBytes, method as DenseMethod | undefined);
  return { ...plan, parameters: selectParameters(dense.model, dense.wrt), modelSize: totalSize(allParameters(dense.model)), batch: shape.batch };
}

/** The cost of Hessian-vector products (what curvature quantities run on), with the directions per product. */
export function productCost(request: EngineRequest, budgetBytes: number): CostEstimate & { batch: number; method: ProductMethod } {
  const dense = denseStack(request);
  if (!dense) return { ...graphCost(request, budgetBytes), batch: request.data.x.shape[0], method: 'graph' };
  const shape = costShape(dense);
  return { ...estimateCost(shape, budgetBytes), batch: shape.batch, method: 'rOperator' };
}

/** The paths that compute Hessian-vector products with arbitrary directions (curvature quantities). */
export type ProductMethod = Exclude<HessianMethod, 'structured'>;

/** Bytes a request holds in typed arrays: its weights and data (what MAX_QUEUED_BYTES counts). */
export function requestBytes(request: EngineRequest): number {
  let bytes = request.data.x.values.byteLength + request.data.y.values.byteLength;
  for (const node of request.model.nodes) for (const values of Object.values(node.weights)) bytes += values?.byteLength ?? 0;
  return bytes;
}

/** A range of the flat parameter vector: columns, or the rows of the same indices. */
export interface Span {
  offset: number;
  count: number;
  /** A part of a tensor's rows that grows block by block (the structured path's own-layer columns), not a whole tensor. */
  partial?: boolean;
}

/**
 * The columns that rows computed with upperOnly leave at 0, for the caller to copy by symmetry from the
 * rows of the same indices, which come before the block in layer-then-row order (the jobs' order): the
 * tensors of lower layers, and on the structured path also its own layer's kernel rows before the
 * block's (see firstOwnRow).
 */
export function symmetricColumns(parameters: readonly PlacedTensor[], block: RowBlock, method: HessianMethod): Span[] {
  const layer = parameters[block.tensor].layer;
  const spans: Span[] = parameters.filter((t) => t.layer < layer).map((t) => ({ offset: t.offset, count: t.size }));
  const kernel = method === 'structured' ? parameters.find((t) => t.layer === layer && t.kind === 'kernel') : undefined;
  const ownRows = kernel ? firstOwnRow(parameters, block) : 0;
  if (kernel && ownRows > 0) spans.push({ offset: kernel.offset, count: ownRows * kernel.shape[1], partial: true });
  return spans;
}

/** Computes row blocks of one prepared model by one method; holds that method's state until dispose(). */
export interface RowSource {
  readonly method: HessianMethod;
  /**
   * Rows [block.count x P]; with upperOnly the columns symmetricColumns names stay 0. `into`: a spare
   * buffer the structured path may write them to (a view of it is returned), instead of a new array.
   */
  rows(block: RowBlock, upperOnly: boolean, into?: ArrayBuffer): Float32Array;
  dispose(): void;
}

/** `batchChunk` (structured): computes the factors over chunks of that many examples (see planHessian). */
export function rowSource(model: PreparedModel, method: DenseMethod, batchChunk?: number): RowSource {
  if (method === 'rOperator') return { method, rows: (block, upperOnly) => hessianRows(model, block, upperOnly), dispose: () => {} };
  // The factors are made with the first block, not with the summary: a job's summary runs on one thread
  // while the others wait for it, and on P = 6154 the factors were 80% of it (33 of 40 ms).
  let assembly: StructuredAssembly | ChunkedAssembly | undefined;
  const assemble = () => (batchChunk && batchChunk < model.batch ? new ChunkedAssembly(model.request, batchChunk) : new StructuredAssembly(model));
  return { method, rows: (block, upperOnly, into) => (assembly ??= assemble()).rows(block, upperOnly, into), dispose: () => assembly?.dispose() }; // rows() checks finiteness
}

export interface HessianSummary {
  parameters: PlacedTensor[];
  size: number;
  loss: number;
  gradient: Float32Array;
}

/** A request evaluated on its batch (loss, gradient) with the rows of its path; dispose() frees both. */
export interface PreparedRequest extends RowSource {
  /** The prepared model: the dense path's, or the graph engine's. */
  readonly model: PreparedModel | PreparedGraph;
  readonly summary: HessianSummary;
}

/**
 * Prepares a request for the path its plan chose (the model's forward and backward pass, and the path's
 * state); `batchChunk`: the plan's, on the structured path.
 */
export function prepareRequest(request: EngineRequest, method: HessianMethod, batchChunk?: number): PreparedRequest {
  const dense = method === 'graph' ? null : denseStack(request);
  if (!dense) {
    const graph = new PreparedGraph(request);
    const { parameters, size, loss, gradient } = graph;
    return { model: graph, summary: { parameters, size, loss, gradient }, method: 'graph', rows: (block, upperOnly) => graph.rows(block, upperOnly), dispose: () => graph.dispose() };
  }
  const model = new PreparedModel(dense);
  try {
    const source = rowSource(model, method as DenseMethod, batchChunk);
    const { parameters, size, loss, gradient } = model;
    return {
      model,
      summary: { parameters, size, loss, gradient },
      method: source.method,
      rows: (block, upperOnly, into) => source.rows(block, upperOnly, into),
      dispose: () => {
        source.dispose();
        model.dispose();
      },
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

export interface HessianResult extends HessianSummary {
  /** P x P row-major; absent when rows went to onRows instead. */
  hessian?: Float32Array;
  meta: BackendInfo & { elapsedMs: number; method: HessianMethod };
}

export interface ComputeOptions {
  blockSize?: number;
  /** Forces a path (tests compare them); by default the engine picks one per model (see planRequest). */
  method?: HessianMethod;
  /** Receives each row block as it is ready ([count x P] rows from `row`); the matrix is then not kept. */
  onRows?: (row: number, count: number, rows: Float32Array) => void;
}

/** Computes the whole result in this thread (the service's small lane; the jobs spread row blocks over workers instead). */
export async function hessianOf(request: EngineRequest, options: ComputeOptions = {}): Promise<HessianResult> {
  const started = performance.now();
  const backend = activeBackend() ?? (await initBackend());
  const plan = planRequest(request, DEFAULT_MEMORY_BUDGET_BYTES, options.method);
  const prepared = prepareRequest(request, plan.method, plan.batchChunk);
  try {
    const { parameters, size } = prepared.summary;
    const blocks = planRowBlocks(parameters, options.blockSize ?? plan.blockSize, plan.method === 'structured');
    let hessian: Float32Array | undefined;
    if (options.onRows) {
      for (const block of blocks) options.onRows(block.row, block.count, prepared.rows(block, false));
    } else {
      // As a job computes it (JobManager.computeRows), so that both give the same matrix to the bit: upper-only
      // rows layer by layer, the columns symmetricColumns names copied from the rows computed before.
      hessian = new Float32Array(size * size);
      const layerOf = (block: RowBlock) => parameters[block.tensor].layer;
      for (const block of [...blocks].sort((a, b) => layerOf(a) - layerOf(b) || a.row - b.row)) {
        const rows = prepared.rows(block, true);
        for (const span of symmetricColumns(parameters, block, prepared.method)) {
          for (let column = span.offset; column < span.offset + span.count; column++) {
            const from = column * size + block.row;
            for (let d = 0; d < block.count; d++) rows[d * size + column] = hessian[from + d];
          }
        }
        hessian.set(rows, block.row * size);
      }
    }
    const meta = { ...backend, elapsedMs: performance.now() - started, method: prepared.method };
    return { ...prepared.summary, hessian, meta };
  } finally {
    prepared.dispose();
  }
}
