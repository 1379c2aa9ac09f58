/**
 * SIGTERM to the real server process (issue 7, point 6): new jobs are refused at once, the running job
 * may finish within SHUTDOWN_GRACE_SECONDS (fastify's own 10 s close timeout does not cut it), or is
 * cancelled when the grace period ends; the process exits 0 and the job's record says succeeded or
 * cancelled, also after a restart. Loopback only; every wait is bounded.
 */
import { once } from 'node:events';
import { afterAll, expect, it } from 'vitest';
import { freshDir, mlpRequest, removeDir, sleep } from './api-helpers.js';
import { serverProcesses } from './server-process.js';

const startServer = serverProcesses();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await removeDir(dir);
});

const post = (base: string, url: string, body: unknown) =>
  fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const getJob = async (base: string, id: string) => (await fetch(`${base}/v1/jobs/${id}`)).json();

/** Waits (bounded) until the job runs and has rows, so that the signal comes mid-job. */
async function runningWithRows(base: string, id: string): Promise<void> {
  for (let i = 0; i < 2400; i++) {
    const job = await getJob(base, id);
    if (job.status === 'running' && job.progress > 0) return;
    expect(['queued', 'running']).toContain(job.status);
    await sleep(25);
  }
  throw new Error('the job did not start');
}

// P = 6154, batch 512: a job that goes on for a while after the signal (seconds; longer on a loaded machine).
const long = mlpRequest([20, 64, 64, 10], 512);
/** Several seconds on every backend (the native one finishes `long` within a 1 s grace period). */
const longer = mlpRequest([25, 92, 92, 10], 1024);

/** A server on a fresh RESULTS_DIR with a long job running (with rows), then SIGTERM. */
async function signalMidJob(graceSeconds: number, request: unknown = long) {
  const dir = await freshDir();
  dirs.push(dir);
  const first = await startServer(dir, { SHUTDOWN_GRACE_SECONDS: String(graceSeconds) });
  const { id } = await (await post(first.base, '/v1/jobs', request)).json();
  await runningWithRows(first.base, id);
  const signalled = Date.now();
  first.child.kill('SIGTERM');
  return { dir, first, id, signalled, exited: once(first.child, 'exit') };
}

it('SIGTERM mid-job with a long grace period: new jobs get 503, the job finishes, exit 0, recorded succeeded', async () => {
  const { dir, first, id, signalled, exited } = await signalMidJob(600);
  await sleep(200);
  const refused = await post(first.base, '/v1/jobs', long);
  expect(refused.status).toBe(503);
  expect((await refused.json()).error).toBe('shutting_down');
  const [code] = await exited;
  const afterSignalMs = Date.now() - signalled;
  expect(code).toBe(0);
  expect(first.output()).not.toMatch(/did not start in time/);

  const second = await startServer(dir);
  try {
    const job = await getJob(second.base, id);
    expect(job.status).toBe('succeeded');
    expect(job.progress).toBe(1);
    // The process waited for the job: it ended after the job did.
    expect(signalled + afterSignalMs).toBeGreaterThanOrEqual(Date.parse(job.finishedAt));
    console.log(`job finished ${Date.parse(job.finishedAt) - signalled} ms after SIGTERM; exit after ${afterSignalMs} ms`);
    expect((await fetch(`${second.base}/v1/jobs/${id}/result`, { headers: { accept: 'application/octet-stream' } })).status).toBe(200);
  } finally {
    second.child.kill('SIGTERM');
    expect((await once(second.child, 'exit'))[0]).toBe(0);
  }
});

it('SIGTERM with a 1 s grace period: the job is cancelled when it ends, exit 0 at once, recorded cancelled by the shutdown', async () => {
  const { dir, id, signalled, exited } = await signalMidJob(1, longer);
  const [code] = await exited;
  expect(code).toBe(0);
  const afterSignalMs = Date.now() - signalled;
  expect(afterSignalMs).toBeGreaterThanOrEqual(1000);
  expect(afterSignalMs).toBeLessThan(10_000); // the running blocks are aborted, not waited for

  const second = await startServer(dir);
  try {
    const job = await getJob(second.base, id);
    expect(job.status).toBe('cancelled');
    expect(job.error.message).toMatch(/the server shut down and its grace period ended/);
    expect(job.progress).toBeLessThan(1);
  } finally {
    second.child.kill('SIGTERM');
    expect((await once(second.child, 'exit'))[0]).toBe(0);
  }
});
