/**
 * One service process of `npm run bench`, on the backend HESSIAN_BACKEND names (the parent starts one
 * per backend). `server`: the whole service on a loopback port, for end-to-end HTTP timings; it sends
 * {port} when listening. `direct`: the service's own path without HTTP (job manager, worker pool,
 * result file), timing each request the parent sends. Both answer {maxRssMb} when asked for "rss".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';
import { JobManager } from '../jobs/manager.js';
import { ComputePool } from '../jobs/pool.js';
import { ResultStore } from '../jobs/store.js';
import { engineRequest } from '../compute/index.js';
import { compactRequest, type ValidatedRequest } from '../schemas/model.js';

export type ChildMessage = { kind: 'rss' } | { kind: 'direct'; request: ValidatedRequest };
export type ParentMessage =
  | { kind: 'listening'; port: number; backend: string }
  | { kind: 'ready'; backend: string }
  | { kind: 'rss'; maxRssMb: number }
  | { kind: 'timed'; seconds: number; method: string; backend: string }
  | { kind: 'failed'; message: string };

const send = (message: ParentMessage) => process.send!(message);
const maxRssMb = () => process.resourceUsage().maxRSS / 1024;
const mode = process.argv[2];
const dir = mkdtempSync(join(tmpdir(), 'hessian-bench-'));
const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', RESULTS_DIR: dir });

if (mode === 'server') {
  const app = await buildApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  let ready = { status: 'starting', backend: '?' };
  for (let i = 0; i < 600 && ready.status === 'starting'; i++) {
    ready = JSON.parse((await app.inject({ method: 'GET', url: '/ready' })).body);
    if (ready.status === 'starting') await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const address = app.server.address();
  send({ kind: 'listening', port: typeof address === 'object' && address ? address.port : 0, backend: ready.backend });
  process.on('message', (message: ChildMessage) => {
    if (message.kind === 'rss') send({ kind: 'rss', maxRssMb: maxRssMb() });
  });
  process.on('disconnect', () => void app.close().finally(() => rmSync(dir, { recursive: true, force: true })));
} else {
  const pool = new ComputePool(config.WORKERS, config.HESSIAN_BACKEND);
  const manager = new JobManager(new ResultStore(dir), pool, { maxQueued: 4, ttlSeconds: 600 });
  await manager.init();
  const { backend } = await pool.backend();
  send({ kind: 'ready', backend });
  process.on('message', async (message: ChildMessage) => {
    if (message.kind === 'rss') return send({ kind: 'rss', maxRssMb: maxRssMb() });
    const started = performance.now();
    const record = await manager.finished(manager.submit(engineRequest(compactRequest(message.request))));
    const seconds = (performance.now() - started) / 1000;
    if (record.status !== 'succeeded') send({ kind: 'failed', message: record.error?.message ?? record.status });
    else send({ kind: 'timed', seconds, method: record.meta?.method ?? '?', backend: record.meta?.backend ?? '?' });
    await manager.forget(manager.get(record.id)!);
  });
  process.on('disconnect', () => void pool.destroy().finally(() => rmSync(dir, { recursive: true, force: true })));
}
