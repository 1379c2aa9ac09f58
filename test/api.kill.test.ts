/**
 * The real server process killed with SIGKILL while a job runs and another waits: a restart on the same
 * RESULTS_DIR reports both (interrupted), never a 404. Loopback only; every wait is bounded.
 */
import { once } from 'node:events';
import { afterAll, expect, it } from 'vitest';
import { freshDir, LARGE, mlpRequest, removeDir, sleep } from './api-helpers.js';
import { fixtures } from './helpers.js';
import { serverProcesses } from './server-process.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const startServer = serverProcesses();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await removeDir(dir);
});

const post = (base: string, body: unknown) =>
  fetch(`${base}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

it('SIGKILL with a running and a queued job: after a restart both are reported as interrupted, not 404', async () => {
  const dir = await freshDir();
  dirs.push(dir);
  const first = await startServer(dir);
  const running = await (await post(first.base, mlpRequest(LARGE.sizes, LARGE.batch))).json();
  const queued = await (await post(first.base, seed.request)).json();
  expect(queued.status).toBe('queued');
  for (let i = 0; i < 400; i++) {
    if ((await (await fetch(`${first.base}/v1/jobs/${running.id}`)).json()).status === 'running') break;
    await sleep(25);
  }
  first.child.kill('SIGKILL');
  await once(first.child, 'exit');

  const second = await startServer(dir);
  try {
    for (const [job, when] of [
      [running, 'before this job finished'],
      [queued, 'before this job started'],
    ] as const) {
      const res = await fetch(`${second.base}/v1/jobs/${job.id}`);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.status).toBe('failed');
      expect(body.error.kind).toBe('interrupted');
      expect(body.error.message).toContain(when);
    }
    // And it computes as usual.
    const again = await (await post(second.base, seed.request)).json();
    let status = again.status;
    for (let i = 0; i < 400 && !['succeeded', 'failed'].includes(status); i++) {
      await sleep(25);
      status = (await (await fetch(`${second.base}/v1/jobs/${again.id}`)).json()).status;
    }
    expect(status).toBe('succeeded');
  } finally {
    second.child.kill('SIGTERM');
    await once(second.child, 'exit');
  }
});
