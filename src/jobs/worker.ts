/**
 * A compute thread of the pool. It sets up its TF.js backend once, keeps the prepared model of the job
 * it last served and its row source (every row block of a job needs the same forward/backward pass
 * and, on the structured path, the same per-example factors), and returns row blocks as transferred
 * Float32Arrays.
 */
import { move, workerData } from 'piscina';
import { tf } from '../compute/tf.js';
import { hessianOf, initBackend, NumericalError, prepareRequest, SpecError, type EngineRequest, type HessianMethod, type PreparedRequest } from '../compute/index.js';
import type { BackendInfo } from '../compute/index.js';
import { computeQuantity, type CurvatureQuery } from '../compute/quantities/index.js';
import { WorkerCrash, type CurvatureAnswer, type HessianAnswer, type WorkerFailure, type WorkerResult, type WorkerTask } from './protocol.js';

const ready = initBackend(workerData?.backend ?? 'auto');
let cached: { jobId: string; prepared: PreparedRequest } | null = null;

/** `request` was validated on the main thread: it is used as it comes. */
function preparedFor(jobId: string, request: EngineRequest | undefined, method: HessianMethod): PreparedRequest {
  if (cached?.jobId === jobId) return cached.prepared;
  cached?.prepared.dispose();
  cached = null;
  cached = { jobId, prepared: prepareRequest(request!, method) };
  return cached.prepared;
}

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  const backend = await ready;
  try {
    switch (task.kind) {
      case 'ping':
        return backend;
      case 'summary': {
        const { loss, gradient } = preparedFor(task.jobId, task.request, task.method).summary;
        return { loss, gradient: Array.from(gradient), backend };
      }
      case 'rows':
        if (task.backend !== backend.backend) {
          throw new Error(`this worker runs on ${backend.backend} but the job started on ${task.backend}; a job never mixes backends`);
        }
        if (cached?.jobId !== task.jobId && !task.request) return { needsRequest: true };
        return move(preparedFor(task.jobId, task.request, task.method).rows(task.block, task.upperOnly)) as Float32Array;
      case 'curvature':
        return curvature(task, backend);
      case 'hessian':
        return (await hessianOf(task.request, { blockSize: task.blockSize, method: task.method })) as HessianAnswer;
      case 'probe':
        return probe(backend);
    }
  } catch (error) {
    if (error instanceof SpecError) return failure('spec', error);
    if (error instanceof NumericalError) return failure('numerical', error);
    return endThread(error);
  }
}

/** A 2x2 matMul through the backend, checked against its product: this thread can compute. */
function probe(backend: BackendInfo): BackendInfo {
  const product = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]])).dataSync());
  if (product[0] !== 17 || product[1] !== 39) throw new Error(`the backend computed [[1,2],[3,4]] x [5,6] as [${product.join(', ')}], not [17, 39]`);
  return backend;
}

const failure = (kind: WorkerFailure['error']['kind'], error: Error): WorkerFailure => ({ error: { kind, message: error.message } });

/**
 * Any other error (a wasm trap such as "memory access out of bounds", an allocation that failed, an
 * unknown error from the backend) may have left this thread's backend unusable, so the thread ends
 * here instead of taking another task: the uncaught error rejects this task with its message, and
 * piscina replaces the thread. The task's promise never settles, so no answer races the error.
 */
function endThread(error: unknown): Promise<never> {
  const cause = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new Promise<never>(() => {
    setImmediate(() => {
      throw new WorkerCrash(`the compute worker failed (${cause}) and was replaced`);
    });
  });
}

/** A curvature quantity on its own prepared model (computed in one task: nothing to cache), its products counted on the task's port. */
function curvature({ request, query, blockSize, progress }: Extract<WorkerTask, { kind: 'curvature' }>, backend: BackendInfo): CurvatureAnswer {
  const started = performance.now();
  const prepared = prepareRequest(request, 'rOperator');
  try {
    const result = computeQuantity(prepared.model, query, blockSize, progress && ((count) => progress.postMessage(count)));
    return { ...result, loss: prepared.summary.loss, meta: { ...backend, elapsedMs: performance.now() - started } };
  } finally {
    prepared.dispose();
    progress?.close();
  }
}
