/**
 * The real server process killed with SIGKILL while a job runs and another waits: a restart on the same
 * RESULTS_DIR reports both (interrupted), never a 404. Loopback only; every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { freshDir, LARGE, mlpRequest, removeDir, sleep } from './api-helpers.js';
import { fixtures } from './helpers.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const server = fileURLToPath(new URL('../dist/server.js', import.meta.url));
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs) await removeDir(dir);
});

/** Starts dist/server.js on a free port; resolves with its base URL once it listens and is ready. */
async function startServer(dir: string): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(process.execPath, [server], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', RESULTS_DIR: dir, WORKERS: '2', LOG_LEVEL: 'info', HESSIAN_BACKEND: process.env.HESSIAN_BACKEND ?? 'auto' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let output = '';
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not listen in time: ${output}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${output}`)));
  });
  child.stdout!.resume();
  for (let i = 0; i < 1200 && (await fetch(`${base}/ready`)).status !== 200; i++) await sleep(50);
  return { child, base };
}

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
