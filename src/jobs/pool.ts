import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { BackendInfo } from '../compute/index.js';
import type { WorkerResult, WorkerTask } from './protocol.js';

/**
 * The compiled worker entry (see worker-entry.cts): next to this file when running from dist/, or in
 * dist/ when this module is loaded from source (tests import src/ directly; `npm test` builds first).
 */
function workerFile(): string {
  const beside = new URL('./worker-entry.cjs', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return fileURLToPath(beside);
  return fileURLToPath(new URL('../../dist/jobs/worker-entry.cjs', import.meta.url));
}

/** A fixed-size piscina pool of compute threads, each with its own TF.js backend instance. */
export class ComputePool {
  private readonly piscina: Piscina<WorkerTask, WorkerResult>;
  readonly threads: number;

  constructor(threads: number, backend: string) {
    this.threads = threads;
    this.piscina = new Piscina({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      workerData: { backend },
    });
  }

  /** Runs a task; aborting `signal` drops it from the queue, or ends the worker thread running it. */
  run(task: WorkerTask, signal?: AbortSignal): Promise<WorkerResult> {
    return this.piscina.run(task, signal ? { signal } : undefined);
  }

  /** Resolves once a worker has loaded its backend; reports which one. */
  async backend(): Promise<BackendInfo> {
    return (await this.run({ kind: 'ping' })) as BackendInfo;
  }

  destroy(): Promise<void> {
    return this.piscina.destroy();
  }
}
