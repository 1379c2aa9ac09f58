import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { configureNativeRuntime, nativeLoadLockBuffer, releaseNativeLoadLockOf, type BackendInfo } from '../compute/index.js';
import { isFailure, RETIRED_EXIT_CODE, type Retiring, type WorkerResult, type WorkerTask } from './protocol.js';

/**
 * The compiled worker entry (see worker-entry.cts): next to this file when running from dist/, or in
 * dist/ when this module is loaded from source (tests import src/ directly; `npm test` builds first).
 */
function workerFile(): string {
  const beside = new URL('./worker-entry.cjs', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return fileURLToPath(beside);
  return fileURLToPath(new URL('../../dist/jobs/worker-entry.cjs', import.meta.url));
}

/** How piscina rejects a task handed to a thread that retired (see worker.ts) before starting it. */
const RETIRED = `worker exited with code: ${RETIRED_EXIT_CODE}`;

export interface PoolOptions {
  /** JS heap limit of a thread. */
  heapLimitMb?: number;
  /** A thread was replaced (after a crash, an abort or a retirement). */
  onReplace?: () => void;
  /** A thread retires: its backend held `backendBytes`, more than recycleMb. */
  onRecycle?: (backendBytes: number) => void;
  /** WORKER_RECYCLE_MB: a thread whose backend holds more after a task is replaced once idle; 0 never. */
  recycleMb?: number;
  /** TensorFlow's, for the native backend (default: see configureNativeRuntime). */
  intraOpThreads?: number;
}

/**
 * A fixed-size piscina pool of compute threads, each with its own TF.js backend instance. A thread
 * whose backend may be broken ends itself (see worker.ts) and piscina starts a replacement; a task
 * aborted through its signal terminates its thread the same way; so does a thread that retires because
 * its backend memory grew past `recycleMb`.
 */
export class ComputePool {
  private readonly piscina: Piscina<WorkerTask, WorkerResult>;
  readonly threads: number;

  constructor(threads: number, backend: string, { heapLimitMb, onReplace, onRecycle, recycleMb = 0, intraOpThreads }: PoolOptions = {}) {
    this.threads = threads;
    configureNativeRuntime(threads, intraOpThreads);
    this.piscina = new Piscina({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      workerData: { backend, recycleMb, nativeLoadLock: nativeLoadLockBuffer() },
      // piscina's default parks an idle thread in a blocking Atomics.wait, where its timers never run; a
      // thread that retires for its memory must be able to end itself once idle (worker.ts).
      ...(recycleMb > 0 ? { atomics: 'disabled' as const } : {}),
      // A thread whose JS heap runs out ends with ERR_WORKER_OUT_OF_MEMORY instead of taking the process with it.
      ...(heapLimitMb ? { resourceLimits: { maxOldGenerationSizeMb: heapLimitMb } } : {}),
    });
    // piscina emits 'error' for a thread that failed with no task in flight (the thread is replaced);
    // unhandled, the event would end the process.
    this.piscina.on('error', () => undefined);
    this.piscina.on('message', (message: Retiring) => {
      if (message?.retiring) onRecycle?.(message.retiring.backendBytes);
    });
    // A thread terminated while it loaded libtensorflow (e.g. the pool closed at once) never frees the lock itself.
    this.piscina.on('workerDestroy', (worker: { id: number }) => releaseNativeLoadLockOf(worker.id));
    let created = 0;
    this.piscina.on('workerCreate', () => {
      if (++created > threads) onReplace?.();
    });
  }

  /**
   * Runs a task; aborting `signal` drops it from the queue, or ends the worker thread running it.
   * transferList: objects the task holds that move to the thread (a MessagePort, spare buffers). A task handed to a
   * thread that then retired, unstarted, runs again (a few times at most: each retirement is a thread
   * replaced); one with a transferList cannot (what it held went with that thread), so a retiring
   * thread computes such a task instead (worker.ts).
   */
  async run(task: WorkerTask, signal?: AbortSignal, transferList?: (MessagePort | ArrayBuffer)[]): Promise<WorkerResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.piscina.run(task, { ...(signal ? { signal } : {}), ...(transferList ? { transferList } : {}) });
      } catch (error) {
        if ((error as Error).message !== RETIRED || transferList || attempt >= this.threads + 2) throw error;
      }
    }
  }

  /** Tasks waiting for a thread. */
  get queued(): number {
    return this.piscina.queueSize;
  }

  /**
   * Whether a thread computes: a 2x2 matMul checked against its product, within `timeoutMs`; null
   * when it does, else why not.
   */
  async probe(timeoutMs: number): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no compute thread answered within ${timeoutMs} ms`), timeoutMs)));
    const answer = this.run({ kind: 'probe' }).then(
      (result) => (isFailure(result) ? result.error.message : null),
      (error: unknown) => (error as Error).message,
    );
    try {
      return await Promise.race([answer, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Threads alive now (a crashed one is replaced within moments). */
  get liveThreads(): number {
    return this.piscina.threads.length;
  }

  /** Resolves once a worker has loaded its backend; reports which one. */
  async backend(): Promise<BackendInfo> {
    return (await this.run({ kind: 'ping' })) as BackendInfo;
  }

  destroy(): Promise<void> {
    return this.piscina.destroy();
  }
}
