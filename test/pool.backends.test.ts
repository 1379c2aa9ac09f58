/**
 * The real worker pool on the native TensorFlow backend: several threads computing at once, and
 * workers replaced by piscina (terminated threads; their successors load tfjs-node again, the
 * upstream failure mode of tensorflow/tfjs#8388 and #2079) still computing correctly. And a job never
 * mixes backends, whichever they are.
 */
import { createRequire } from 'node:module';
import type { Worker } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { afterAll, describe, expect, it } from 'vitest';
import { JobManager, type Job } from '../src/jobs/manager.js';
import { nativeLoadLockBuffer } from '../src/compute/backend.js';
import { ComputePool } from '../src/jobs/pool.js';
import type { WorkerTask } from '../src/jobs/protocol.js';
import { ResultStore } from '../src/jobs/store.js';
import { parseEngineRequest } from '../src/hessian.js';
import { freshDir, removeDir, sleep } from './api-helpers.js';
import { fixtures, relativeError, type FixtureCase } from './helpers.js';

const TOLERANCE = 1e-4;
// 280 parameters, three layers: many row blocks, so that every thread of the pool gets some.
const fixture = fixtures().find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;

const nativeInstalled = (() => {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
})();
const SKIPPED = '@tensorflow/tfjs-node is not installed here (`npm run native-tf` installs it)';
if (!nativeInstalled) console.warn(`pool.backends.test.ts: native TensorFlow worker tests SKIPPED: ${SKIPPED}`);

const dirs: string[] = [];
const pools: ComputePool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.destroy()));
  await Promise.all(dirs.map(removeDir));
});

async function managerOn(pool: ComputePool): Promise<{ manager: JobManager; store: ResultStore }> {
  const dir = await freshDir();
  dirs.push(dir);
  const store = new ResultStore(dir);
  const manager = new JobManager(store, pool, { maxQueued: 4, ttlSeconds: 600 });
  await manager.init();
  return { manager, store };
}

async function finished(manager: JobManager, job: Job, timeoutMs = 90_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  while (!['succeeded', 'failed', 'cancelled'].includes(job.record.status)) {
    if (Date.now() > deadline) throw new Error(`job still ${job.record.status} after ${timeoutMs} ms`);
    await Promise.race([manager.changed(job), sleep(200)]);
  }
  return job;
}

/** Runs the fixture as a job through the pool and checks it against the PyTorch float64 reference. */
async function expectCorrectJob(manager: JobManager, store: ResultStore, expected: FixtureCase, backend: string) {
  const job = await finished(manager, manager.submit(parseEngineRequest(expected.request)));
  expect(job.record.error ?? null).toBeNull();
  expect(job.record.status).toBe('succeeded');
  expect(job.record.meta?.backend).toBe(backend);
  const size = expected.expected.gradient.length;
  expect(relativeError(job.record.gradient!, expected.expected.gradient)).toBeLessThan(TOLERANCE);
  const matrix = await store.readRows(job.record.id, size, 0, size);
  expect(relativeError(matrix, expected.expected.hessian.flat())).toBeLessThan(TOLERANCE);
}

// The pool's piscina threads (private to ComputePool: the test looks in to terminate them).
const threadsOf = (pool: ComputePool): Worker[] => (pool as unknown as { piscina: Piscina }).piscina.threads as Worker[];

async function waitForThreads(pool: ComputePool, count: number, notIn: Set<number>): Promise<number[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ids = threadsOf(pool).map((w) => w.threadId);
    if (ids.length === count && ids.every((id) => !notIn.has(id))) return ids;
    if (Date.now() > deadline) throw new Error(`pool has threads ${ids.join(',')}, expected ${count} new ones`);
    await sleep(50);
  }
}

describe.skipIf(!nativeInstalled)(`native TensorFlow in the worker pool${nativeInstalled ? '' : ` (SKIPPED: ${SKIPPED})`}`, () => {
  it('three threads compute one job at once on tensorflow, and their replacements (terminated twice) do too', async () => {
    let replaced = 0;
    const pool = new ComputePool(3, 'tensorflow', { onReplace: () => replaced++ });
    pools.push(pool);
    const info = await pool.backend();
    expect(info.backend).toBe('tensorflow');
    expect(info.tensorflowVersion).toMatch(/^\d+\.\d+/);
    expect(info.intraOpThreads).toBeGreaterThanOrEqual(1);
    const { manager, store } = await managerOn(pool);
    await expectCorrectJob(manager, store, fixture, 'tensorflow');

    const seen = new Set<number>();
    for (let round = 0; round < 2; round++) {
      const before = await waitForThreads(pool, 3, seen);
      before.forEach((id) => seen.add(id));
      // piscina replaces a thread that exits (minThreads); each successor loads tfjs-node afresh.
      await Promise.all(threadsOf(pool).map((w) => w.terminate()));
      await waitForThreads(pool, 3, seen);
      // Forced to 'tensorflow', a successor that could not load the addon would fail its task, and the
      // rows guard refuses any block on another backend: a correct job means every thread ran TF.
      await expectCorrectJob(manager, store, fixture, 'tensorflow');
      // The pool counts a successor once it is up (piscina's workerCreate after its start-up).
      for (let i = 0; i < 300 && replaced < 3 * (round + 1); i++) await sleep(100);
      expect(replaced).toBe(3 * (round + 1));
    }
  });
});

describe.skipIf(!nativeInstalled)(`libtensorflow's load lock${nativeInstalled ? '' : ` (SKIPPED: ${SKIPPED})`}`, () => {
  it('a thread destroyed while it holds the lock (terminated mid-load) frees it: the next pool starts at once and computes', async () => {
    const lock = new Int32Array(nativeLoadLockBuffer());
    const early = new ComputePool(1, 'tensorflow');
    expect((await early.backend()).backend).toBe('tensorflow');
    expect(lock[0]).toBe(0);
    // As if its thread were terminated between taking the lock and freeing it (its finally never runs).
    Atomics.store(lock, 0, threadsOf(early)[0].threadId + 1);
    await early.destroy();
    expect(lock[0]).toBe(0);
    const started = Date.now();
    const next = new ComputePool(2, 'tensorflow');
    pools.push(next);
    expect((await next.backend()).backend).toBe('tensorflow');
    // A lock still held would be taken over only after 20 s.
    expect(Date.now() - started).toBeLessThan(15_000);
    const { manager, store } = await managerOn(next);
    await expectCorrectJob(manager, store, fixture, 'tensorflow');
    expect(lock[0]).toBe(0);
  });
});

describe('a job never mixes backends', () => {
  it('row blocks refused by workers on another backend than the summary fail the job with a clear error', async () => {
    const cpu = new ComputePool(1, 'cpu');
    const wasm = new ComputePool(2, 'wasm');
    pools.push(cpu, wasm);
    expect((await cpu.backend()).backend).toBe('cpu');
    expect((await wasm.backend()).backend).toBe('wasm');
    // A pool whose workers disagree: the summary lands on a cpu worker, row blocks on wasm workers.
    const split = {
      threads: 2,
      run: (task: WorkerTask) => (task.kind === 'rows' ? wasm : cpu).run(task),
    } as unknown as ComputePool;
    const { manager } = await managerOn(split);
    const job = await finished(manager, manager.submit(parseEngineRequest(fixture.request)));
    expect(job.record.status).toBe('failed');
    expect(job.record.error?.message).toMatch(/runs on wasm but the job started on cpu; a job never mixes backends/);

    // The same job on one backend succeeds.
    const { manager: plain, store } = await managerOn(wasm);
    await expectCorrectJob(plain, store, fixture, 'wasm');
  });
});
