/**
 * Storage seen through the API: the MAX_RESULTS_BYTES quota (507), a DELETE that cannot delete (500,
 * job kept), a succeeded job whose last record write failed, synchronous requests that leave nothing
 * behind, and cancel messages that say who cancelled.
 */
import { existsSync } from 'node:fs';
import { readdir, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { matrixBytes, ResultStore, type JobRecord } from '../src/jobs/store.js';
import {
  eventually,
  expectJsonMatchesFixture,
  finishedJob,
  freshDir,
  LARGE,
  mlpRequest,
  pollJob,
  removeDir,
  sleep,
  startApp,
  type TestApp,
} from './api-helpers.js';
import { fixtures } from './helpers.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const apps: TestApp[] = [];
async function start(overrides: Parameters<typeof startApp>[0] = {}) {
  const app = await startApp(overrides);
  apps.push(app);
  return app;
}
afterAll(async () => {
  for (const app of apps) await app.close();
  for (const app of apps) await removeDir(app.dir);
});

describe('MAX_RESULTS_BYTES', () => {
  it('a result that would not fit is refused with 507, saying what it needs and the quota; deleting a result makes room', async () => {
    const one = matrixBytes(4); // the 2x2 seed case: P = 4
    // No small lane: synchronous requests are written as jobs (a small lane answer needs no disk).
    const app = await start({ MAX_RESULTS_BYTES: one + 10, SMALL_JOB_FLOPS: 0 });
    const first = await finishedJob(app, seed.request);
    expect(first.status).toBe('succeeded');
    for (const url of ['/v1/jobs', '/v1/hessian']) {
      const refused = await app.http().post(url).send(seed.request);
      expect(refused.status, url).toBe(507);
      expect(refused.body.error).toBe('insufficient_storage');
      expect(refused.body.message).toContain(`needs ${one} bytes`);
      expect(refused.body.message).toContain(`${one} of the MAX_RESULTS_BYTES quota of ${one + 10} bytes`);
    }
    expect((await app.http().delete(`/v1/jobs/${first.id}`)).status).toBe(204);
    // A synchronous answer holds its bytes only while it is answered.
    for (let i = 0; i < 2; i++) expectJsonMatchesFixture((await app.http().post('/v1/hessian').send(seed.request)).body, seed);
    expect((await finishedJob(app, seed.request)).status).toBe('succeeded');
  });
});

describe('DELETE that cannot delete', () => {
  it('answers 500 storage_error and keeps the job as it was; once the disk is back, DELETE removes it', async () => {
    const app = await start();
    const job = await finishedJob(app, seed.request);
    // RESULTS_DIR replaced by a file: the job's directory cannot be renamed away (root ignores chmod).
    const aside = `${app.dir}.aside`;
    await rename(app.dir, aside);
    await writeFile(app.dir, 'not a directory');
    try {
      const res = await app.http().delete(`/v1/jobs/${job.id}`);
      expect(res.status).toBe(500);
      expect(res.body.error).toBe('storage_error');
      expect(res.body.message).toMatch(new RegExp(`could not delete the files of job ${job.id}: ENOTDIR`));
    } finally {
      await rm(app.dir);
      await rename(aside, app.dir);
    }
    const still = await app.http().get(`/v1/jobs/${job.id}`);
    expect(still.status).toBe(200);
    expect(still.body.status).toBe('succeeded');
    expectJsonMatchesFixture((await app.http().get(`/v1/jobs/${job.id}/result`)).body, seed);

    expect((await app.http().delete(`/v1/jobs/${job.id}`)).status).toBe(204);
    expect((await app.http().get(`/v1/jobs/${job.id}`)).status).toBe(404);
    expect(await readdir(app.dir)).toEqual([]);
  });
});

describe('a succeeded job whose final record write fails', () => {
  it('is succeeded now and after a restart, with its result', async () => {
    const dir = await freshDir();
    const save = ResultStore.prototype.save;
    const spy = vi.spyOn(ResultStore.prototype, 'save').mockImplementation(async function (this: ResultStore, record: JobRecord) {
      if (record.status === 'succeeded') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return save.call(this, record);
    });
    let id: string;
    try {
      const app = await start({ RESULTS_DIR: dir });
      const job = await finishedJob(app, seed.request);
      id = job.id;
      expect(job.status).toBe('succeeded');
      expectJsonMatchesFixture((await app.http().get(`/v1/jobs/${id}/result`)).body, seed);
      await app.close();
    } finally {
      spy.mockRestore();
    }
    const again = await start({ RESULTS_DIR: dir });
    const recovered = await again.http().get(`/v1/jobs/${id}`);
    expect(recovered.status).toBe(200);
    expect(recovered.body.status).toBe('succeeded');
    expectJsonMatchesFixture((await again.http().get(`/v1/jobs/${id}/result`)).body, seed);
  });
});

describe('synchronous requests and cancellation', () => {
  it('a synchronous client that leaves while queued leaves nothing on disk; a DELETE says it was a DELETE', async () => {
    const app = await start({ SHUTDOWN_GRACE_SECONDS: 0 });
    const long = await app.http().post('/v1/jobs').send(mlpRequest(LARGE.sizes, LARGE.batch));
    expect(long.status).toBe(202);
    await pollJob(app.http, long.body.id, (job) => job.status === 'running');

    // Three synchronous requests queued behind it whose clients go away.
    await app.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.app.server.address() as AddressInfo;
    for (let i = 0; i < 3; i++) {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/hessian', method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('error', () => undefined);
      req.end(JSON.stringify(seed.request));
      await sleep(150);
      req.destroy();
    }
    await sleep(100);
    const cancelled = await app.http().delete(`/v1/jobs/${long.body.id}`);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.error).toEqual({ kind: 'cancelled', message: 'cancelled by a DELETE request' });
    // Once the pool is free, a new job runs; by then the abandoned requests have settled.
    expect((await finishedJob(app, seed.request)).status).toBe('succeeded');
    await eventually(async () => (await readdir(app.dir)).length === 2);
    const left = (await readdir(app.dir)).sort();
    expect(left).toContain(long.body.id);
    expect((await app.http().get(`/v1/jobs/${long.body.id}`)).body.error.message).toBe('cancelled by a DELETE request');
  });

  it('shutdown cancels a queued job with a message that says so', async () => {
    const app = await start({ SHUTDOWN_GRACE_SECONDS: 0 });
    const long = await app.http().post('/v1/jobs').send(mlpRequest(LARGE.sizes, LARGE.batch));
    const queued = await app.http().post('/v1/jobs').send(seed.request);
    expect(queued.body.status).toBe('queued');
    await app.close();
    const next = await start({ RESULTS_DIR: app.dir });
    expect((await next.http().get(`/v1/jobs/${queued.body.id}`)).body.error).toEqual({
      kind: 'cancelled',
      message: 'cancelled: the server shut down before the job started',
    });
    expect((await next.http().get(`/v1/jobs/${long.body.id}`)).body.error.message).toMatch(/server shut down/);
    expect(existsSync(join(app.dir, long.body.id, 'hessian.npy'))).toBe(false);
  });
});
