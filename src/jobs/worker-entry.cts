/**
 * The file piscina loads in each worker thread. Piscina first tries require() on its worker file, and
 * Node 20's require() of an ES module can abort the whole process (V8 fatal "IsGraphAsync must be used
 * on an instantiated module") when it races an import() of the same module graph; it did once in CI.
 * This CommonJS entry loads the ES module worker through one shared import() instead.
 */
import type { WorkerResult, WorkerTask } from './protocol.js';

type WorkerModule = { default: (task: WorkerTask) => Promise<WorkerResult> };
let worker: Promise<WorkerModule> | undefined; // loaded once, on the first task, shared by all after

export = async function run(task: WorkerTask): Promise<WorkerResult> {
  worker ??= import('./worker.js');
  return (await worker).default(task);
};
