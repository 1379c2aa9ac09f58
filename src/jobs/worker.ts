/**
 * A compute thread of the pool. It sets up its TF.js backend once, keeps the prepared model of the job
 * it last served (every row block of a job needs the same forward/backward pass), and returns row
 * blocks as transferred Float32Arrays.
 */
import { move, workerData } from 'piscina';
import {
  hessianRows,
  initBackend,
  NumericalError,
  parseRequest,
  PreparedModel,
  SpecError,
} from '../compute/index.js';
import type { WorkerFailure, WorkerResult, WorkerTask } from './protocol.js';

const ready = initBackend(workerData?.backend ?? 'auto');
let cached: { jobId: string; model: PreparedModel } | null = null;

function modelFor(jobId: string, request: unknown): PreparedModel {
  if (cached?.jobId === jobId) return cached.model;
  cached?.model.dispose();
  cached = null;
  const model = new PreparedModel(parseRequest(request));
  cached = { jobId, model };
  return model;
}

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  const backend = await ready;
  try {
    switch (task.kind) {
      case 'ping':
        return backend;
      case 'summary': {
        const model = modelFor(task.jobId, task.request);
        return { loss: model.loss, gradient: Array.from(model.gradient), backend };
      }
      case 'rows':
        if (cached?.jobId !== task.jobId && !task.request) return { needsRequest: true };
        return move(hessianRows(modelFor(task.jobId, task.request), task.block, task.upperOnly)) as Float32Array;
    }
  } catch (error) {
    return failure(error);
  }
}

function failure(error: unknown): WorkerFailure {
  const kind = error instanceof SpecError ? 'spec' : error instanceof NumericalError ? 'numerical' : 'internal';
  return { error: { kind, message: (error as Error).message ?? String(error) } };
}
