/**
 * What outlives an app: results on disk across a restart on the same RESULTS_DIR, their expiry after
 * RESULT_TTL_SECONDS, and graceful shutdown (the running job finishes within the grace period, or is
 * cancelled after it; queued jobs are cancelled).
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { parse as parseNpy } from 'npyjs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkNpyHeader,
  decodeFloat32LE,
  eventually,
  expectJsonMatchesFixture,
  expectMatrixMatchesFixture,
  finishedJob,
  firstDifference,
  freshDir,
  behindFlatten,
  LARGE,
  mlpRequest,
  pollJob,
  rawBody,
  reassembleNdjson,
  removeDir,
  sleep,
  startApp,
  type TestApp,
} from './api-helpers.js';
import { JOB_MARKER } from '../src/jobs/store.js';
import { fixtures } from './helpers.js';

const cases = fixtures();
const larger = cases.find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
const wrtCase = cases.find((c) => c.name === 'wrt_out_of_order_dense_1_bias_dense_3_kernel')!;

const apps: TestApp[] = [];
const dirs: string[] = [];
async function start(overrides: Parameters<typeof startApp>[0]) {
  const app = await startApp(overrides);
  apps.push(app);
  return app;
}

afterAll(async () => {
  for (const app of apps) await app.close();
  for (const dir of new Set([...dirs, ...apps.map((a) => a.dir)])) await removeDir(dir);
});

const binary = (app: TestApp, path: string) => app.http().get(path).set('accept', 'application/octet-stream').buffer(true).parse(rawBody);

async function runJob(app: TestApp, body: unknown): Promise<string> {
  return (await runJobRecord(app, body)).id;
}

/** Runs a job to success; its record as first seen finished. */
async function runJobRecord(app: TestApp, body: unknown): Promise<any> {
  const record = await finishedJob(app, body as object);
  expect(record.status).toBe('succeeded');
  return record;
}

describe('restart on the same RESULTS_DIR', () => {
  it('finished results are served again, in every form, by a second app; an interrupted job is recorded as failed', async () => {
    const dir = await freshDir();
    dirs.push(dir);
    const first = await start({ RESULTS_DIR: dir });
    const id = await runJob(first, larger.request);
    const wrtId = await runJob(first, wrtCase.request);
    const record = (await first.http().get(`/v1/jobs/${id}`)).body;
    const bytes = (await binary(first, `/v1/jobs/${id}/result`)).body as Buffer;
    expectMatrixMatchesFixture(decodeFloat32LE(bytes), larger);

    // A synchronous answer leaves nothing on disk once it has been sent.
    const sync = await first.http().post('/v1/hessian').send(wrtCase.request);
    expect(sync.status).toBe(200);
    await eventually(async () => (await readdir(dir)).sort().join() === [id, wrtId].sort().join());
    await first.close();

    // What a crash in the middle of a job leaves: its record still says running, its matrix half written.
    const crashed = randomUUID();
    await mkdir(join(dir, crashed));
    const crashedRecord = { ...record, id: crashed, status: 'running', finishedAt: null, expiresAt: null, rowsDone: 10, meta: null };
    await writeFile(join(dir, crashed, 'job.json'), JSON.stringify(crashedRecord));
    await writeFile(join(dir, crashed, 'hessian.npy'), Buffer.alloc(1024));
    await writeFile(join(dir, crashed, JOB_MARKER), '');
    // And what is not the service's: a directory that is not a job, one named like a job without the
    // marker file (e.g. RESULTS_DIR pointed at a shared folder), a file. Startup leaves them alone.
    await mkdir(join(dir, 'not-a-job'));
    await writeFile(join(dir, 'not-a-job', 'data.txt'), 'keep me');
    const foreign = randomUUID();
    await mkdir(join(dir, foreign));
    await writeFile(join(dir, foreign, 'notes.txt'), 'keep me too');
    await writeFile(join(dir, 'README'), 'shared folder');

    const second = await start({ RESULTS_DIR: dir });
    const again = await second.http().get(`/v1/jobs/${id}`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(record);

    const json = await second.http().get(`/v1/jobs/${id}/result`);
    expect(json.status).toBe(200);
    expectJsonMatchesFixture(json.body, larger);
    const raw = await binary(second, `/v1/jobs/${id}/result`);
    expect(raw.status).toBe(200);
    expect(raw.body.equals(bytes)).toBe(true);
    const npy = await second.http().get(`/v1/jobs/${id}/result`).set('accept', 'application/x-npy').buffer(true).parse(rawBody);
    const P = larger.expected.gradient.length;
    const offset = checkNpyHeader(npy.body, P, P);
    expect(npy.body.subarray(offset).equals(bytes)).toBe(true);
    const parsed = parseNpy(npy.body.buffer.slice(npy.body.byteOffset, npy.body.byteOffset + npy.body.length) as ArrayBuffer);
    expect(parsed.shape).toEqual([P, P]);
    expectMatrixMatchesFixture(parsed.data as Float32Array, larger);
    const stream = await second.http().get(`/v1/jobs/${id}/stream`).buffer(true).parse(rawBody);
    expect(stream.status).toBe(200);
    expect(firstDifference(reassembleNdjson(stream.body.toString('utf8'), P), decodeFloat32LE(bytes))).toBeNull();
    const wrtJson = await second.http().get(`/v1/jobs/${wrtId}/result`);
    expectJsonMatchesFixture(wrtJson.body, wrtCase);

    const interrupted = await second.http().get(`/v1/jobs/${crashed}`);
    expect(interrupted.status).toBe(200);
    expect(interrupted.body.status).toBe('failed');
    expect(interrupted.body.error.kind).toBe('interrupted');
    // It expires like any finished job (RESULT_TTL_SECONDS, by default an hour, after it was found).
    expect(Date.parse(interrupted.body.expiresAt) - Date.parse(interrupted.body.finishedAt)).toBe(second.config.RESULT_TTL_SECONDS * 1000);
    const noResult = await second.http().get(`/v1/jobs/${crashed}/result`);
    expect(noResult.status).toBe(409);
    expect(noResult.body.error).toBe('job_failed');
    expect(existsSync(join(dir, crashed, 'hessian.npy'))).toBe(false);
    expect(await readFile(join(dir, 'not-a-job', 'data.txt'), 'utf8')).toBe('keep me');
    expect(await readFile(join(dir, foreign, 'notes.txt'), 'utf8')).toBe('keep me too');
    expect(await readFile(join(dir, 'README'), 'utf8')).toBe('shared folder');
    expect((await second.http().get(`/v1/jobs/${foreign}`)).status).toBe(404);

    // The second app computes as usual next to what it recovered.
    const more = await runJob(second, wrtCase.request);
    expectJsonMatchesFixture((await second.http().get(`/v1/jobs/${more}/result`)).body, wrtCase);
    await second.close();
  });
});

describe('RESULT_TTL_SECONDS', () => {
  it('a result expires: 404 afterwards, files swept from disk, and not brought back by a restart', async () => {
    const dir = await freshDir();
    dirs.push(dir);
    const app = await start({ RESULTS_DIR: dir, RESULT_TTL_SECONDS: 1 });
    const job = await runJobRecord(app, wrtCase.request);
    const { id } = job;
    expect(Date.parse(job.expiresAt) - Date.parse(job.finishedAt)).toBe(1000);
    expect(existsSync(join(dir, id, 'hessian.npy'))).toBe(true);
    // A second one, left alone: the periodic sweep (not a request) must remove it.
    const kept = await runJobRecord(app, wrtCase.request);
    const untouched = kept.id;

    await sleep(Math.max(0, Date.parse(job.expiresAt) - Date.now()) + 300);
    for (const path of [`/v1/jobs/${id}`, `/v1/jobs/${id}/result`, `/v1/jobs/${id}/stream`, `/v1/jobs/${id}`]) {
      const res = await app.http().get(path);
      expect(res.status, path).toBe(404);
      expect(res.body.error).toBe('not_found');
    }
    await eventually(async () => !existsSync(join(dir, id)));
    await sleep(Math.max(0, Date.parse(kept.expiresAt) - Date.now()));
    await eventually(async () => !existsSync(join(dir, untouched)), 4000);

    const last = await runJob(app, wrtCase.request);
    await app.close();
    expect(existsSync(join(dir, last, 'job.json'))).toBe(true);
    const lastJob = JSON.parse(await readFile(join(dir, last, 'job.json'), 'utf8'));
    await sleep(Math.max(0, Date.parse(lastJob.expiresAt) - Date.now()) + 100);
    const again = await start({ RESULTS_DIR: dir, RESULT_TTL_SECONDS: 1 });
    expect((await again.http().get(`/v1/jobs/${last}`)).status).toBe(404);
    expect(existsSync(join(dir, last))).toBe(false);
    await again.close();
  });
});

describe('graceful shutdown', () => {
  it('close() lets the running job finish within SHUTDOWN_GRACE_SECONDS, cancels queued ones, and the result stays on disk', async () => {
    const dir = await freshDir();
    dirs.push(dir);
    const app = await start({ RESULTS_DIR: dir, SHUTDOWN_GRACE_SECONDS: 60 });
    // On the graph engine (behindFlatten), rows in many small blocks: a job still running 20 ms after its
    // first rows on either backend (on the structured path these P rows are three blocks).
    const body = { ...behindFlatten(mlpRequest(LARGE.sizes, LARGE.batch, { seed: 9, dataSeed: 13 })), wrt: ['dense_2/bias', 'dense_3/bias', 'dense_4/kernel'] };
    const P = 92 + 92 + 920;
    const created = await app.http().post('/v1/jobs').send(body);
    expect(created.status).toBe(202);
    const { id } = created.body;
    const queued = await app.http().post('/v1/jobs').send(wrtCase.request);
    expect(queued.body.status).toBe('queued');
    const seen = await pollJob(app.http, id, (job) => job.status === 'running' && job.progress > 0, { intervalMs: 10 });
    expect(seen[seen.length - 1].progress).toBeLessThan(1);
    // A client following the job's rows gets all of them although the server is closing.
    const follower = app.http().get(`/v1/jobs/${id}/stream`).set('accept', 'application/octet-stream').buffer(true).parse(rawBody).then((r) => r);
    await sleep(20);
    const before = await app.http().get(`/v1/jobs/${id}`);
    expect(before.body.status).toBe('running');

    await app.close();
    const record = JSON.parse(await readFile(join(dir, id, 'job.json'), 'utf8'));
    expect(record.status).toBe('succeeded');
    expect(record.rowsDone).toBe(P);
    expect((await stat(join(dir, id, 'hessian.npy'))).size).toBe(checkNpyHeader(await readFile(join(dir, id, 'hessian.npy')), P, P) + P * P * 4);
    const queuedRecord = JSON.parse(await readFile(join(dir, queued.body.id, 'job.json'), 'utf8'));
    expect(queuedRecord.status).toBe('cancelled');
    expect(queuedRecord.startedAt).toBeNull();
    const followed = await follower;
    expect(followed.status).toBe(200);
    expect(followed.body.length).toBe(P * P * 4);

    // The next app serves it; it equals a fresh synchronous computation of the same request.
    const next = await start({ RESULTS_DIR: dir });
    const served = await binary(next, `/v1/jobs/${id}/result`);
    expect(served.status).toBe(200);
    expect(served.body.equals(followed.body)).toBe(true);
    const fresh = await next.http().post('/v1/hessian').send(body).set('accept', 'application/octet-stream').buffer(true).parse(rawBody);
    expect(fresh.status).toBe(200);
    if (!fresh.body.equals(served.body)) expect(firstDifference(decodeFloat32LE(fresh.body), decodeFloat32LE(served.body))).toBeNull();
    expect((await next.http().get(`/v1/jobs/${queued.body.id}`)).body.status).toBe('cancelled');
    await next.close();
  });

  it('a job still running when the grace period ends is cancelled; its partial matrix is not kept', async () => {
    const dir = await freshDir();
    dirs.push(dir);
    const app = await start({ RESULTS_DIR: dir, SHUTDOWN_GRACE_SECONDS: 1 });
    const created = await app.http().post('/v1/jobs').send(mlpRequest(LARGE.sizes, LARGE.batch));
    expect(created.status).toBe(202);
    const { id } = created.body;
    await pollJob(app.http, id, (job) => job.status === 'running' && job.progress > 0, { intervalMs: 20 });
    // Closes only once the stream's response has begun: a request that arrives after close() began is a 503.
    let begun!: () => void;
    const streaming = new Promise<void>((resolve) => (begun = resolve));
    const follower = app
      .http()
      .get(`/v1/jobs/${id}/stream`)
      .buffer(true)
      .parse((response, cb) => {
        begun();
        rawBody(response, cb);
      })
      .then((r) => r);
    await streaming;

    await app.close();
    const record = JSON.parse(await readFile(join(dir, id, 'job.json'), 'utf8'));
    expect(record.status).toBe('cancelled');
    expect(record.rowsDone).toBeLessThan(record.size);
    expect(await readdir(join(dir, id))).toEqual([JOB_MARKER, 'job.json'].sort());
    const followed = await follower;
    const lines = followed.body.toString('utf8').trim().split('\n');
    expect(JSON.parse(lines[lines.length - 1])).toMatchObject({ error: 'cancelled' });

    const next = await start({ RESULTS_DIR: dir });
    const job = await next.http().get(`/v1/jobs/${id}`);
    expect(job.status).toBe(200);
    expect(job.body.status).toBe('cancelled');
    const result = await next.http().get(`/v1/jobs/${id}/result`);
    expect(result.status).toBe(409);
    expect(result.body.error).toBe('job_cancelled');
    await next.close();
  });
});
