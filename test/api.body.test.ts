/**
 * Request bodies read on a body thread (plugins/json-body.ts): the same answers and the same errors as
 * on the main thread, the limits fastify's own parser keeps (MAX_BODY_BYTES counted decompressed, with
 * or without Content-Length), and a body too heavy for the thread's heap refused with 413.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fuzzRequest } from '../src/scripts/fuzz-cases.js';
import { expectMatchesLinearReference, FEATURES, linearBody, linearReference, useApp, type TestApp } from './api-helpers.js';

function expectClose(actual: number, expected: number, scale: number) {
  expect(Math.abs(actual - expected) / Math.max(1, Math.abs(scale))).toBeLessThan(1e-4);
}

/** Posts with Transfer-Encoding: chunked (no Content-Length), the body in 64 KiB writes. */
async function postChunked(t: TestApp, path: string, body: Buffer, headers: Record<string, string> = {}) {
  if (!t.app.server.listening) await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    for (let at = 0; at < body.length; at += 65536) req.write(body.subarray(at, at + 65536));
    req.end();
  });
}

describe('a large body, read on its own thread', () => {
  const t = useApp({ MAX_BODY_BYTES: 4 * 2 ** 20 });
  const body = linearBody(6000);
  const text = JSON.stringify(body);
  const reference = linearReference(body);

  it('gives the float64 reference Hessian, sent plainly, chunked or gzip-compressed', async () => {
    expect(text.length).toBeGreaterThan(t.config.BODY_THREAD_BYTES);
    const answers = [
      await t.http().post('/v1/hessian').set('content-type', 'application/json').send(text),
      await postChunked(t, '/v1/hessian', Buffer.from(text)),
      await postChunked(t, '/v1/hessian', gzipSync(text), { 'content-encoding': 'gzip' }),
    ];
    for (const res of answers) {
      expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
      expect(res.body.size).toBe(FEATURES + 1);
      expectMatchesLinearReference(res.body, reference);
    }
  });

  it('as a job, the same matrix', async () => {
    const created = await t.http().post('/v1/jobs').set('content-type', 'application/json').send(text);
    expect(created.status).toBe(202);
    let job = created.body;
    for (let i = 0; i < 600 && !['succeeded', 'failed', 'cancelled'].includes(job.status); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      job = (await t.http().get(`/v1/jobs/${job.id}`)).body;
    }
    expect(job.status).toBe('succeeded');
    const result = await t.http().get(`/v1/jobs/${job.id}/result`);
    expectClose(result.body.hessian[3][7], reference.hessian[3][7], reference.hessian[3][7]);
    expectClose(result.body.hessian[FEATURES][FEATURES], 2, 2);
  });

  it('answers a field error naming the field, invalid JSON and prototype poisoning as the small-body path does', async () => {
    const ragged = structuredClone(body);
    ragged.data.x[4321] = ragged.data.x[4321].slice(1);
    const bad = await t.http().post('/v1/hessian').set('content-type', 'application/json').send(JSON.stringify(ragged));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_request');
    expect(bad.body.message).toBe(`data.x[4321] has ${FEATURES - 1} features but model.inputShape is [${FEATURES}]`);
    expect(bad.body.details).toEqual([{ path: 'data.x[4321]', message: bad.body.message }]);

    const truncated = await t.http().post('/v1/hessian').set('content-type', 'application/json').send(text.slice(0, -1));
    expect(truncated.status).toBe(400);
    expect(truncated.body.error).toBe('invalid_json');

    const poisoned = `{"__proto__":{"polluted":1},${text.slice(1)}`;
    const refused = await t.http().post('/v1/hessian').set('content-type', 'application/json').send(poisoned);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_json');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('stops at MAX_BODY_BYTES with 413, counted decompressed, with or without Content-Length', async () => {
    const tooLarge = `${text.slice(0, -1)},"padding":"${' '.repeat(4 * 2 ** 20)}"}`;
    const declared = await t.http().post('/v1/hessian').set('content-type', 'application/json').send(tooLarge);
    const chunked = await postChunked(t, '/v1/jobs', Buffer.from(tooLarge));
    const compressed = await postChunked(t, '/v1/jobs', gzipSync(tooLarge), { 'content-encoding': 'gzip' });
    expect(gzipSync(tooLarge).length).toBeLessThan(t.config.MAX_BODY_BYTES);
    for (const res of [declared, chunked, compressed]) {
      expect(res.status).toBe(413);
      expect(res.body.error).toBe('payload_too_large');
      expect(res.body.message).toMatch(/larger than MAX_BODY_BYTES/);
    }
    const still = await t.http().post('/v1/hessian').set('content-type', 'application/json').send(text);
    expect(still.status).toBe(200);
  });
});

describe('a body too heavy for the body thread', () => {
  const t = useApp({ BODY_THREAD_HEAP_MB: 64 });

  it('is a 413 naming the thread heap, and the service goes on', async () => {
    // A million one-element rows in x and in y: some 8 MB of JSON, over 100 MiB as parsed arrays.
    const rows = 1_000_000;
    const payload = `{"model":{"inputShape":[1],"layers":[{"type":"dense","units":1}]},"loss":"meanSquaredError","data":{"x":[${'[0],'.repeat(rows - 1)}[0]],"y":[${'[0],'.repeat(rows - 1)}[0]]}}`;
    const res = await t.http().post('/v1/jobs').set('content-type', 'application/json').send(payload);
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('payload_too_large');
    expect(res.body.message).toMatch(/body thread's 64 MiB/);
    const small = await t.http().post('/v1/hessian').send(linearBody(3));
    expect(small.status).toBe(200);
  }, 120_000);
});

describe('the same answers whichever thread reads the body', () => {
  const onMain = useApp({ BODY_THREAD_BYTES: 2 ** 30 });
  const onThreads = useApp({ BODY_THREAD_BYTES: 0 });
  /** An answer without its timings (meta.elapsedMs). */
  const stable = (body: any) => ({ ...body, meta: undefined });

  it('for fuzzed bodies (valid, invalid, malformed) to /v1/hessian, /v1/jobs and /v1/curvature', async () => {
    let compared = 0;
    const routes = new Set<string>();
    for (let i = 0; compared < 40 && i < 400; i++) {
      const fuzzed = fuzzRequest(9, i, []);
      if (fuzzed.method !== 'POST') continue;
      compared++;
      routes.add(fuzzed.url);
      const send = (t: TestApp) => t.app.inject({ method: 'POST', url: fuzzed.url, headers: fuzzed.headers, payload: fuzzed.payload });
      const [main, thread] = [await send(onMain), await send(onThreads)];
      const what = `${fuzzed.label}: ${thread.body.slice(0, 300)}`;
      expect(thread.statusCode, what).toBe(main.statusCode);
      expect(thread.statusCode, what).toBeLessThan(500);
      if (main.statusCode === 202) expect(JSON.parse(thread.body).size, what).toBe(JSON.parse(main.body).size);
      else if (main.headers['content-type']?.toString().startsWith('application/json')) {
        expect(stable(JSON.parse(thread.body)), what).toEqual(stable(JSON.parse(main.body)));
      }
    }
    expect(compared).toBe(40);
    expect([...routes].sort()).toEqual(['/v1/curvature', '/v1/hessian', '/v1/jobs']);
  }, 120_000);
});
