/**
 * The file piscina loads in each worker thread. Piscina first tries require() on its worker file, and
 * Node 20's require() of an ES module can abort the whole process (V8 fatal "IsGraphAsync must be used
 * on an instantiated module") when it races an import() of the same module graph; it did once in CI.
 * This CommonJS entry loads the ES module worker through one shared import() instead.
 */
import type { WorkerResult, WorkerTask } from './protocol.js';

type WorkerModule = { default: (task: WorkerTask) => Promise<WorkerResult> };
// Loaded as the thread starts, so that its backend is set up before the first task arrives (a thread
// that replaces a failed or aborted one is warm by the time it is needed); shared by every task.
const worker: Promise<WorkerModule> = import('./worker.js');
// Not awaited until a task comes: a failure to load then fails that task, not the thread's start.
worker.catch(() => undefined);

export = async function run(task: WorkerTask): Promise<WorkerResult> {
  return (await worker).default(task);
};
