/**
 * A compute thread of the pool. It sets up its TF.js backend once, keeps the prepared model of the job
 * it last served and its row source (every row block of a job needs the same forward/backward pass
 * and, on the structured path, the same per-example factors), and returns row blocks as transferred
 * Float32Arrays.
 */
import { move, workerData } from 'piscina';
import { initBackend, NumericalError, parseRequest, PreparedModel, rowSource, SpecError, type HessianMethod, type RowSource } from '../compute/index.js';
import type { BackendInfo } from '../compute/index.js';
import { computeQuantity, type CurvatureQuery } from '../compute/quantities/index.js';
import type { HessianRequest } from '../schemas/model.js';
import type { CurvatureAnswer, WorkerFailure, WorkerResult, WorkerTask } from './protocol.js';

const ready = initBackend(workerData?.backend ?? 'auto');
let cached: { jobId: string; model: PreparedModel; source: RowSource } | null = null;

function sourceFor(jobId: string, request: unknown, method: HessianMethod): RowSource {
  if (cached?.jobId === jobId) return cached.source;
  cached?.source.dispose();
  cached?.model.dispose();
  cached = null;
  const model = new PreparedModel(parseRequest(request));
  try {
    cached = { jobId, model, source: rowSource(model, method) };
  } catch (error) {
    model.dispose();
    throw error;
  }
  return cached.source;
}

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  const backend = await ready;
  try {
    switch (task.kind) {
      case 'ping':
        return backend;
      case 'summary': {
        sourceFor(task.jobId, task.request, task.method);
        const { loss, gradient } = cached!.model;
        return { loss, gradient: Array.from(gradient), backend };
      }
      case 'rows':
        if (cached?.jobId !== task.jobId && !task.request) return { needsRequest: true };
        return move(sourceFor(task.jobId, task.request, task.method).rows(task.block, task.upperOnly)) as Float32Array;
      case 'curvature':
        return curvature(task.request, task.query, task.blockSize, backend);
    }
  } catch (error) {
    return failure(error);
  }
}

function failure(error: unknown): WorkerFailure {
  const kind = error instanceof SpecError ? 'spec' : error instanceof NumericalError ? 'numerical' : 'internal';
  return { error: { kind, message: (error as Error).message ?? String(error) } };
}

/** A curvature quantity on its own prepared model (a request, not a job: nothing to cache). */
function curvature(request: HessianRequest, query: CurvatureQuery, blockSize: number, backend: BackendInfo): CurvatureAnswer {
  const started = performance.now();
  const model = new PreparedModel(request);
  try {
    const result = computeQuantity(model, query, blockSize);
    return { ...result, loss: model.loss, meta: { ...backend, elapsedMs: performance.now() - started } };
  } finally {
    model.dispose();
  }
}
