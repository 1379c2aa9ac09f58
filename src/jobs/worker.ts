/**
 * A compute thread of the pool. It sets up its TF.js backend once, keeps the prepared model of the job
 * it last served and its row source (every row block of a job needs the same forward/backward pass
 * and, on the structured path, the same per-example factors), and returns row blocks as transferred
 * Float32Arrays.
 */
import { MessagePort, parentPort, threadId } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { tf } from '../compute/tf.js';
import { hessianOf, initBackend, NumericalError, prepareRequest, shareNativeLoadLock, SpecError, transposedTiles, type EngineRequest, type HessianMethod, type PreparedRequest } from '../compute/index.js';
import type { BackendInfo } from '../compute/index.js';
import { computeQuantity, type CurvatureQuery } from '../compute/quantities/index.js';
import { RETIRED_EXIT_CODE, WorkerCrash, type CurvatureAnswer, type Retiring, type HessianAnswer, type RowsAnswer, type WorkerFailure, type WorkerResult, type WorkerTask } from './protocol.js';

shareNativeLoadLock(workerData?.nativeLoadLock);
const ready = initBackend(workerData?.backend ?? 'auto');
let cached: { jobId: string; prepared: PreparedRequest } | null = null;

/** `request` was validated on the main thread: it is used as it comes. */
function preparedFor(jobId: string, request: EngineRequest | undefined, method: HessianMethod, batchChunk?: number): PreparedRequest {
  if (cached?.jobId === jobId) return cached.prepared;
  cached?.prepared.dispose();
  cached = null;
  cached = { jobId, prepared: prepareRequest(request!, method, batchChunk) };
  return cached.prepared;
}

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  clearTimeout(retireWhenIdle);
  // A retiring thread serves the job whose data it holds; any other task ends it, untouched, and the
  // pool runs that task again on another thread (ComputePool.run), except one holding a MessagePort,
  // which cannot be sent again: that one it computes, and retires after.
  const ownJob = task.kind === 'rows' && task.jobId === cached?.jobId;
  if (retiring && !ownJob && !holdsMoved(task)) process.exit(RETIRED_EXIT_CODE);
  const result = await compute(task);
  retireIfLarge();
  return result;
}

/** Whether the task holds objects moved to this thread (a port, spare buffers): it cannot be sent again. */
const holdsMoved = (task: WorkerTask) => Object.values(task).some((value) => value instanceof MessagePort) || (task.kind === 'rows' && !!task.spares?.some(Boolean));

async function compute(task: WorkerTask): Promise<WorkerResult> {
  const backend = await ready;
  try {
    switch (task.kind) {
      case 'ping':
        return backend;
      case 'summary': {
        const { loss, gradient } = preparedFor(task.jobId, task.request, task.method, task.batchChunk).summary;
        return { loss, gradient: Array.from(gradient), backend };
      }
      case 'rows':
        if (task.backend !== backend.backend) {
          throw new Error(`this worker runs on ${backend.backend} but the job started on ${task.backend}; a job never mixes backends`);
        }
        if (cached?.jobId !== task.jobId && !task.request) return { needsRequest: true };
        return rowsAnswer(task, preparedFor(task.jobId, task.request, task.method, task.batchChunk));
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

/** A block's rows and the tiles of their transpose the task asked for, all moved (not copied) to the main thread. */
function rowsAnswer(task: Extract<WorkerTask, { kind: 'rows' }>, prepared: PreparedRequest): RowsAnswer {
  const [rowsSpare, ...tileSpares] = task.spares ?? [];
  const rows = prepared.rows(task.block, task.upperOnly, rowsSpare ?? undefined);
  const tiles = transposedTiles(rows, task.block.row, prepared.summary.size, task.tiles, tileSpares);
  const answer = { rows, tiles };
  return move({ [transferableSymbol]: [rows.buffer, ...tiles.map((t) => t.buffer)], [valueSymbol]: answer }) as unknown as RowsAnswer;
}

/** WORKER_RECYCLE_MB in bytes; 0: never. */
const recycleBytes = ((workerData?.recycleMb as number | undefined) ?? 0) * 2 ** 20;
/** A retiring thread is ended once idle this long (or by its next task of another job). */
const RETIRE_IDLE_MS = 500;
let retiring = false;
let retireWhenIdle: NodeJS.Timeout | undefined;

/**
 * The memory this thread's backend holds: on wasm the module's heap, which grows to the largest task
 * and never shrinks (WebAssembly memory cannot); elsewhere the bytes of the tensors alive (the job it
 * keeps prepared), since their memory is given back when they are disposed.
 */
function backendBytes(): number {
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  return wasm?.HEAPU8 ? wasm.HEAPU8.buffer.byteLength : tf.memory().numBytes;
}

/**
 * After a task whose answer is on its way: a thread whose backend holds more than WORKER_RECYCLE_MB
 * says so (the pool counts it) and retires. It goes on with the job it holds, and ends (exit code
 * RETIRED_EXIT_CODE, piscina starts a fresh thread) at its first task of anything else or once idle;
 * never before its answer was taken, so the task that grew it is never lost.
 */
function retireIfLarge(): void {
  if (!retiring && recycleBytes > 0) {
    const bytes = backendBytes();
    if (bytes > recycleBytes) {
      retiring = true;
      parentPort?.postMessage({ retiring: { threadId, backendBytes: bytes } } satisfies Retiring);
    }
  }
  if (retiring) retireWhenIdle = setTimeout(() => process.exit(RETIRED_EXIT_CODE), RETIRE_IDLE_MS);
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
