/**
 * Jobs of realistic size: lifecycle and progress, streams joined at any point, cancellation, and the
 * event loop staying responsive while a large Hessian computes.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeFloat32LE,
  eventually,
  expectJsonMatchesFixture,
  firstDifference,
  isFinishedStatus,
  LARGE,
  MEDIUM,
  behindFlatten,
  mlpRequest,
  mlpSize,
  pollJob,
  rawBody,
  reassembleNdjson,
  sleep,
  useApp,
} from './api-helpers.js';
import { JOB_MARKER } from '../src/jobs/store.js';
import { fixtures } from './helpers.js';

const t = useApp();

const STATUS_ORDER = ['queued', 'running', 'succeeded'];
const binaryGet = (path: string) => t.http().get(path).set('accept', 'application/octet-stream').buffer(true).parse(rawBody);
const ndjsonGet = (path: string) => t.http().get(path).set('accept', 'application/x-ndjson').buffer(true).parse(rawBody);

/** Max |H - Hᵀ| / max |H| of a P x P row-major matrix. */
function asymmetry(values: Float32Array, P: number): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < P; i++) {
    for (let j = i; j < P; j++) {
      diff = Math.max(diff, Math.abs(values[i * P + j] - values[j * P + i]));
      scale = Math.max(scale, Math.abs(values[i * P + j]));
    }
  }
  return diff / scale;
}

/**
 * Polls a job every few ms until it succeeds, checking that status only moves forward and progress
 * never goes down; calls `atHalf` once, the first time it sees the job running at progress >= 0.5.
 */
async function followJob(id: string, atHalf?: (job: any) => void) {
  const seen: any[] = [];
  let halfSeen: any = null;
  await pollJob(
    t.http,
    id,
    (job) => {
      seen.push(job);
      if (!halfSeen && job.status === 'running' && job.progress >= 0.5 && job.progress < 1) {
        halfSeen = job;
        atHalf?.(job);
      }
      return isFinishedStatus(job.status);
    },
    { intervalMs: 10, timeoutMs: 120_000 },
  );
  for (let i = 1; i < seen.length; i++) {
    expect(seen[i].progress).toBeGreaterThanOrEqual(seen[i - 1].progress);
    expect(STATUS_ORDER.indexOf(seen[i].status)).toBeGreaterThanOrEqual(STATUS_ORDER.indexOf(seen[i - 1].status));
  }
  for (const job of seen) {
    expect(job.progress).toBeGreaterThanOrEqual(0);
    expect(job.progress).toBeLessThanOrEqual(1);
    if (job.status === 'succeeded') expect(job.progress).toBe(1);
  }
  return { seen, halfSeen, last: seen[seen.length - 1] };
}

describe('a medium job (MLP 20-64-64-10, batch 64, P = 6154)', () => {
  const body = mlpRequest(MEDIUM.sizes, MEDIUM.batch);
  const P = mlpSize(MEDIUM.sizes);

  it('progress is monotone until it succeeds, and its result equals the synchronous answer to the same request', async () => {
    expect(P).toBe(6154);
    const created = await t.http().post('/v1/jobs').send(body);
    expect(created.status).toBe(202);
    expect(created.body.size).toBe(P);
    expect(created.body.progress).toBe(0);
    const { id } = created.body;
    // Queued behind the job (one job computes at a time), so it runs while the job's result is checked.
    const sync = t.http().post('/v1/hessian').send(body).set('accept', 'application/octet-stream').buffer(true).parse(rawBody).then((r) => r);

    const { seen, halfSeen, last } = await followJob(id);
    expect(last.status).toBe('succeeded');
    // The job was watched while it computed, not only before and after.
    expect(seen.some((job) => job.status === 'running' && job.progress > 0 && job.progress < 1)).toBe(true);
    expect(halfSeen, 'the job was seen running at half or more').not.toBeNull();
    expect(new Set(seen.map((job) => job.createdAt)).size).toBe(1);
    expect(Date.parse(last.startedAt)).toBeGreaterThanOrEqual(Date.parse(last.createdAt));
    expect(Date.parse(last.finishedAt)).toBeGreaterThanOrEqual(Date.parse(last.startedAt));

    const result = await binaryGet(`/v1/jobs/${id}/result`);
    expect(result.status).toBe(200);
    expect(result.headers['x-hessian-size']).toBe(String(P));
    expect(result.body.length).toBe(P * P * 4);
    const parameters = JSON.parse(result.headers['x-hessian-parameters']);
    expect(parameters.map((p: any) => [p.name, p.offset, p.size])).toEqual([
      ['dense_1/kernel', 0, 1280],
      ['dense_1/bias', 1280, 64],
      ['dense_2/kernel', 1344, 4096],
      ['dense_2/bias', 5440, 64],
      ['dense_3/kernel', 5504, 640],
      ['dense_3/bias', 6144, 10],
    ]);
    const matrix = decodeFloat32LE(result.body);
    expect(matrix.every(Number.isFinite)).toBe(true);
    expect(asymmetry(matrix, P)).toBeLessThan(1e-4);

    const answer = await sync;
    expect(answer.status).toBe(200);
    expect(answer.headers['x-hessian-parameters']).toBe(result.headers['x-hessian-parameters']);
    expect(answer.headers['x-hessian-loss']).toBe(result.headers['x-hessian-loss']);
    if (!answer.body.equals(result.body)) expect(firstDifference(decodeFloat32LE(answer.body), matrix)).toBeNull();

    expect((await t.http().delete(`/v1/jobs/${id}`)).status).toBe(204);
  });
});

// On the graph engine (behindFlatten): the job is seen between half way and the end on either backend.
// On the structured path its P rows are two blocks, the second done moments after the first.
describe('streams of a job with slow rows (flatten, 6-92-92-10, batch 512, wrt the first dense layer, P = 644)', () => {
  const body = { ...behindFlatten(mlpRequest([6, 92, 92, 10], 512, { seed: 3, dataSeed: 5 })), wrt: ['dense_2/kernel', 'dense_2/bias'] };
  const P = 6 * 92 + 92;

  it('NDJSON and binary, from the start, from half way and after the end: the rows reassemble into the result', async () => {
    const created = await t.http().post('/v1/jobs').send(body);
    expect(created.status).toBe(202);
    expect(created.body.size).toBe(P);
    const { id } = created.body;

    const streams: [string, 'ndjson' | 'binary', Promise<any>][] = [
      ['NDJSON from the start', 'ndjson', ndjsonGet(`/v1/jobs/${id}/stream`).then((r) => r)],
      // Without Accept the stream is NDJSON too.
      ['NDJSON by default', 'ndjson', t.http().get(`/v1/jobs/${id}/stream`).buffer(true).parse(rawBody).then((r) => r)],
      ['binary from the start', 'binary', binaryGet(`/v1/jobs/${id}/stream`).then((r) => r)],
    ];
    const { halfSeen, last } = await followJob(id, () => {
      streams.push(['NDJSON from half way', 'ndjson', ndjsonGet(`/v1/jobs/${id}/stream`).then((r) => r)]);
      streams.push(['binary from half way', 'binary', binaryGet(`/v1/jobs/${id}/stream`).then((r) => r)]);
    });
    expect(last.status).toBe('succeeded');
    expect(halfSeen, 'the job was seen running at half or more').not.toBeNull();
    streams.push(['NDJSON after the end', 'ndjson', ndjsonGet(`/v1/jobs/${id}/stream`).then((r) => r)]);
    streams.push(['binary after the end', 'binary', binaryGet(`/v1/jobs/${id}/stream`).then((r) => r)]);

    const result = await binaryGet(`/v1/jobs/${id}/result`);
    expect(result.status).toBe(200);
    const matrix = decodeFloat32LE(result.body);
    expect(JSON.parse(result.headers['x-hessian-parameters'])).toEqual([
      { name: 'dense_2/kernel', shape: [6, 92], offset: 0, size: 552 },
      { name: 'dense_2/bias', shape: [92], offset: 552, size: 92 },
    ]);
    expect(asymmetry(matrix, P)).toBeLessThan(1e-4);

    expect(streams).toHaveLength(7);
    for (const [name, form, pending] of streams) {
      const stream = await pending;
      expect(stream.status, name).toBe(200);
      expect(stream.headers['x-hessian-size'], name).toBe(String(P));
      if (form === 'ndjson') {
        expect(stream.headers['content-type'], name).toMatch(/^application\/x-ndjson/);
        expect(firstDifference(reassembleNdjson(stream.body.toString('utf8'), P), matrix), name).toBeNull();
      } else {
        expect(stream.headers['content-type'], name).toMatch(/^application\/octet-stream/);
        expect(stream.body.length, name).toBe(P * P * 4);
        expect(stream.body.equals(result.body), name).toBe(true);
      }
    }

    // The JSON result holds the same float32 values.
    const json = await t.http().get(`/v1/jobs/${id}/result`).set('accept', 'application/json');
    expect(json.status).toBe(200);
    expect(json.body.size).toBe(P);
    expect(json.body.gradient).toHaveLength(P);
    expect(firstDifference(Float32Array.from(json.body.hessian.flat() as number[]), matrix)).toBeNull();
  });
});

describe('a large job (MLP 25-92-92-10, batch 256, P = 11878)', () => {
  const body = mlpRequest(LARGE.sizes, LARGE.batch);
  const P = mlpSize(LARGE.sizes);
  let id: string;
  let stream: Promise<any>;

  it('while it computes, GET /health answers in under 100 ms every time', async () => {
    expect(P).toBe(11878);
    const created = await t.http().post('/v1/jobs').send(body);
    expect(created.status).toBe(202);
    id = created.body.id;
    await pollJob(t.http, id, (job) => job.status === 'running' && job.progress > 0, { intervalMs: 20 });

    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      const res = await t.http().get('/health');
      latencies.push(performance.now() - started);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'ok' });
      await sleep(100);
    }
    const during = await t.http().get(`/v1/jobs/${id}`);
    // Every measurement was taken while the job was computing rows.
    expect(during.body.status).toBe('running');
    expect(during.body.progress).toBeLessThan(1);
    expect(Math.max(...latencies), `latencies ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`).toBeLessThan(100);
    // Followed from here on by an NDJSON stream, which the next test reads after cancelling.
    stream = ndjsonGet(`/v1/jobs/${id}/stream`).then((r) => r);
  });

  it('cancelling it answers cancelled at once, ends its stream with an error line, and a new small job succeeds correctly', async () => {
    const before = await t.http().get(`/v1/jobs/${id}`);
    expect(before.body.status).toBe('running');

    const cancelled = await t.http().delete(`/v1/jobs/${id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.id).toBe(id);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.progress).toBeLessThan(1);
    expect(cancelled.body.finishedAt).not.toBeNull();
    const after = await t.http().get(`/v1/jobs/${id}`);
    expect(after.body.status).toBe('cancelled');

    // A stream that was following the job ends with an {"error"} line after the rows it had.
    const followed = await stream;
    expect(followed.status).toBe(200);
    const lines = followed.body.toString('utf8').trim().split('\n').map((l: string) => JSON.parse(l));
    expect(lines[lines.length - 1]).toMatchObject({ error: 'cancelled' });
    let next = 0;
    for (const line of lines.slice(0, -1)) {
      expect(line.offset).toBe(next);
      next += line.rows.length;
    }
    expect(next).toBeLessThan(P);

    // Neither a result nor a new stream of a cancelled job; cancelling again is harmless.
    const result = await t.http().get(`/v1/jobs/${id}/result`);
    expect(result.status).toBe(409);
    expect(result.body.error).toBe('job_cancelled');
    expect((await t.http().get(`/v1/jobs/${id}/stream`)).status).toBe(409);

    const fixture = fixtures().find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
    const small = await t.http().post('/v1/jobs').send(fixture.request);
    expect(small.status).toBe(202);
    const done = await pollJob(t.http, small.body.id, (job) => isFinishedStatus(job.status), { timeoutMs: 60_000 });
    expect(done[done.length - 1].status).toBe('succeeded');
    const json = await t.http().get(`/v1/jobs/${small.body.id}/result`);
    expect(json.status).toBe(200);
    expectJsonMatchesFixture(json.body, fixture);

    // The cancelled job's partial matrix is not left on disk; a finished one is deleted with 204. Its
    // record's last atomic write (a job.json.*.tmp) may still be settling on a loaded machine.
    const listing = () => readdir(join(t.dir, id));
    await eventually(async () => !(await listing()).some((name) => name.endsWith('.tmp')));
    expect(await listing()).toEqual([JOB_MARKER, 'job.json'].sort());
    expect((await t.http().delete(`/v1/jobs/${id}`)).status).toBe(204);
    expect((await t.http().get(`/v1/jobs/${id}`)).status).toBe(404);
  });

  it('a job cancelled before its first row leaves no matrix behind either', async () => {
    const created = await t.http().post('/v1/jobs').send(body);
    expect(created.status).toBe(202);
    const cancelled = await t.http().delete(`/v1/jobs/${created.body.id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    // The service still answers; the next request may take the small lane, so the cancelled job's
    // record can still be in its last atomic write (a job.json.*.tmp) for a moment: wait for it to settle.
    const fixture = fixtures()[0];
    const res = await t.http().post('/v1/hessian').send(fixture.request);
    expect(res.status).toBe(200);
    expectJsonMatchesFixture(res.body, fixture);
    const listing = () => readdir(join(t.dir, created.body.id));
    await eventually(async () => !(await listing()).some((name) => name.endsWith('.tmp')));
    expect(await listing()).toEqual([JOB_MARKER, 'job.json'].sort());
  });
});

describe('a binary stream of a job that fails before its first row', () => {
  // BCE on probabilities with a linear output of exactly 1: log(1 - 1) makes the job fail at once.
  const failing = {
    model: { inputShape: [1], layers: [{ type: 'dense', units: 1, activation: 'linear', useBias: false, kernel: [[1]] }] },
    loss: 'binaryCrossentropy',
    data: { x: [[1]], y: [[0]] },
  };

  it('answers 409 job_failed (never 500), whether asked at once or after the failure', async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const created = await t.http().post('/v1/jobs').send(failing);
      expect(created.status).toBe(202);
      const res = await binaryGet(`/v1/jobs/${created.body.id}/stream`);
      expect(res.status).toBe(409);
      expect(JSON.parse(res.body.toString()).error).toBe('job_failed');
    }
  });
});
