/**
 * A shared deployment: API keys and job ownership, the per-client rate limit and queue share,
 * CORS, compressed request bodies and answers, q-value negotiation, and enum error messages.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, createGunzip, deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../src/routes/errors.js';
import { REQUEST_EXAMPLES } from '../src/schemas/examples.js';
import { expectJsonMatchesFixture, isFinishedStatus, LARGE, mlpRequest, pollJob, sleep, useApp } from './api-helpers.js';
import { fixtures, relativeError } from './helpers.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
// An answer of 1 KiB or more (a smaller one is sent as it is, compression would not pay: @fastify/compress's threshold).
const larger = fixtures().find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
const KEY_A = 'key-a-0123456789';
const KEY_B = 'key-b-9876543210';
const ORIGIN = 'https://notebook.example.org';

interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request over plain node:http: no automatic decompression, so the encoded bytes are seen as sent. */
function raw(app: FastifyInstance, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<RawAnswer> {
  if (!app.server.listening) throw new Error('the app is not listening');
  const { port } = app.server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const decode: Record<string, (b: Buffer) => Buffer> = { gzip: gunzipSync, deflate: inflateSync, br: brotliDecompressSync };

describe('API keys: 401, 403, jobs owned by their key, open health checks, protected metrics and docs', () => {
  const keysDir = mkdtempSync(join(tmpdir(), 'hessian-keys-'));
  const keysFile = join(keysDir, 'keys.txt');
  writeFileSync(keysFile, `# the second client\n\n${KEY_B}\n`);
  afterAll(() => rmSync(keysDir, { recursive: true, force: true }));
  const t = useApp({ WORKERS: 1, API_KEYS: KEY_A, API_KEYS_FILE: keysFile, PROTECT_DOCS_AND_METRICS: true, MAX_JOBS_PER_CLIENT: 1, CORS_ORIGINS: ORIGIN });
  const asA = (r: any) => r.set('authorization', `Bearer ${KEY_A}`);
  const asB = (r: any) => r.set('x-api-key', KEY_B);

  it('401 without a key, 403 with an unknown one, on every /v1 route', async () => {
    for (const req of [() => t.http().post('/v1/hessian').send(seed.request), () => t.http().get('/v1/jobs/some-id'), () => t.http().delete('/v1/jobs/some-id')]) {
      const none = await req();
      expect(none.status).toBe(401);
      expect(none.body.error).toBe('unauthorized');
      expect(none.body.message).toMatch(/Authorization: Bearer/);
      const wrong = await req().set('authorization', 'Bearer not-a-key');
      expect(wrong.status).toBe(403);
      expect(wrong.body.error).toBe('forbidden');
      expect((await req().set('x-api-key', 'not-a-key')).status).toBe(403);
    }
  });

  it('a key from API_KEYS (Bearer) or API_KEYS_FILE (X-API-Key) computes the seed Hessian', async () => {
    for (const as of [asA, asB]) {
      const res = await as(t.http().post('/v1/hessian')).send(seed.request);
      expect(res.status).toBe(200);
      expectJsonMatchesFixture(res.body, seed);
    }
  });

  it('/health and /ready stay open; /metrics and the documentation need a key with PROTECT_DOCS_AND_METRICS', async () => {
    expect((await t.http().get('/health')).status).toBe(200);
    expect((await t.http().get('/ready')).status).toBe(200);
    for (const path of ['/metrics', '/openapi.json', '/docs']) {
      expect((await t.http().get(path)).status, path).toBe(401);
      expect([200, 302], path).toContain((await asA(t.http().get(path))).status);
    }
    const doc = (await asB(t.http().get('/openapi.json'))).body;
    // Keys are on: the document requires them (no anonymous `{}` alternative) on /v1, not on /health.
    expect(doc.paths['/v1/hessian'].post.security).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);
    expect(doc.paths['/health'].get.security).toEqual([]);
  });

  it("key A's job is invisible and undeletable to key B (404, as if it did not exist) and stays A's", async () => {
    const created = await asA(t.http().post('/v1/jobs')).send(seed.request);
    expect(created.status).toBe(202);
    const id = created.body.id;
    for (let polls = 0; !isFinishedStatus((await asA(t.http().get(`/v1/jobs/${id}`))).body.status); polls++) {
      expect(polls).toBeLessThan(3000);
      await sleep(20);
    }
    for (const [method, path] of [['get', `/v1/jobs/${id}`], ['get', `/v1/jobs/${id}/result`], ['get', `/v1/jobs/${id}/stream`], ['delete', `/v1/jobs/${id}`]] as const) {
      const res = await asB(t.http()[method](path));
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toEqual({ error: 'not_found', message: `no job ${id} (never created, deleted, or its result expired)` });
    }
    const unknown = await asB(t.http().get('/v1/jobs/00000000-0000-0000-0000-000000000000'));
    expect(unknown.status).toBe(404); // the same answer as for A's job: nothing tells them apart
    const result = await asA(t.http().get(`/v1/jobs/${id}/result`));
    expect(result.status).toBe(200);
    expectJsonMatchesFixture(result.body, seed);
    expect((await asA(t.http().delete(`/v1/jobs/${id}`))).status).toBe(204);
    expect((await asA(t.http().get(`/v1/jobs/${id}`))).status).toBe(404);
  });

  it('MAX_JOBS_PER_CLIENT: a client with a job unfinished gets 429 client_queue_full with Retry-After; another key still gets in', async () => {
    const large = mlpRequest(LARGE.sizes, LARGE.batch);
    const first = await asA(t.http().post('/v1/jobs')).send(large);
    expect(first.status).toBe(202);
    try {
      const second = await asA(t.http().post('/v1/jobs')).send(seed.request);
      expect(second.status).toBe(429);
      expect(second.body.error).toBe('client_queue_full');
      expect(second.body.message).toMatch(/MAX_JOBS_PER_CLIENT/);
      expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);
      const other = await asB(t.http().post('/v1/jobs')).send(seed.request);
      expect(other.status).toBe(202);
      await asB(t.http().delete(`/v1/jobs/${other.body.id}`));
    } finally {
      await asA(t.http().delete(`/v1/jobs/${first.body.id}`));
    }
    // Once A's job is cancelled, A may submit again.
    const again = await asA(t.http().post('/v1/hessian')).send(seed.request);
    expect(again.status).toBe(200);
  });

  it('CORS preflight from an allowed origin, without a key; another origin gets no CORS headers', async () => {
    const preflight = await t
      .http()
      .options('/v1/hessian')
      .set('origin', ORIGIN)
      .set('access-control-request-method', 'POST')
      .set('access-control-request-headers', 'authorization, content-type, content-encoding');
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(preflight.headers['access-control-allow-methods']).toMatch(/POST/);
    for (const header of ['authorization', 'content-type', 'content-encoding', 'x-api-key']) {
      expect(preflight.headers['access-control-allow-headers'].toLowerCase()).toContain(header);
    }
    const stranger = await t.http().options('/v1/hessian').set('origin', 'https://elsewhere.example').set('access-control-request-method', 'POST');
    expect(stranger.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('a cross-origin binary answer exposes every X-Hessian-* header it carries; a 401 is readable by the page too', async () => {
    const res = await asA(t.http().post('/v1/hessian')).set('origin', ORIGIN).set('accept', 'application/x-npy').send(seed.request);
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    const exposed = res.headers['access-control-expose-headers'].toLowerCase().split(/\s*,\s*/);
    const sent = Object.keys(res.headers).filter((h) => h.startsWith('x-hessian-'));
    expect(sent).toEqual(expect.arrayContaining(['x-hessian-size', 'x-hessian-parameters', 'x-hessian-loss', 'x-hessian-backend', 'x-hessian-dtype']));
    for (const header of [...sent, 'x-request-id', 'retry-after']) expect(exposed).toContain(header);
    const denied = await t.http().post('/v1/hessian').set('origin', ORIGIN).send(seed.request);
    expect(denied.status).toBe(401);
    expect(denied.headers['access-control-allow-origin']).toBe(ORIGIN);
  });
});

describe('RATE_LIMIT_PER_MINUTE: per key, 429 rate_limited with Retry-After, health checks not counted', () => {
  const t = useApp({ WORKERS: 1, API_KEYS: `${KEY_A},${KEY_B}`, RATE_LIMIT_PER_MINUTE: 3 });

  it('the fourth request of key A in a minute is refused; key B and /health are unaffected', async () => {
    const get = (key: string) => t.http().get('/v1/jobs/00000000-0000-0000-0000-000000000000').set('x-api-key', key);
    for (let i = 0; i < 3; i++) expect((await get(KEY_A)).status).toBe(404);
    const limited = await get(KEY_A);
    expect(limited.status).toBe(429);
    expect(limited.body.error).toBe('rate_limited');
    expect(limited.body.message).toMatch(/RATE_LIMIT_PER_MINUTE/);
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect((await get(KEY_B)).status).toBe(404);
    for (let i = 0; i < 5; i++) expect((await t.http().get('/health')).status).toBe(200);
  });
});

describe('without API_KEYS: open as before; compression, negotiation, helpful enum errors', () => {
  const t = useApp({ WORKERS: 2, MAX_BODY_BYTES: 64 * 1024 });
  beforeAll(async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  const json = { 'content-type': 'application/json' };

  it('gzip, deflate and br request bodies compute the seed Hessian; identity too', async () => {
    const body = Buffer.from(JSON.stringify(seed.request));
    const encoders: Record<string, (b: Buffer) => Buffer> = { gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync, identity: (b) => b };
    for (const [encoding, encode] of Object.entries(encoders)) {
      const res = await raw(t.app, 'POST', '/v1/hessian', { ...json, 'content-encoding': encoding, 'accept-encoding': 'identity' }, encode(body));
      expect(res.status, encoding).toBe(200);
      expectJsonMatchesFixture(JSON.parse(res.body.toString()), seed);
    }
  });

  it('a zip bomb (64 KiB limit, 40 MB inflated) is refused with 413 and the service goes on', async () => {
    const bomb = gzipSync(Buffer.alloc(40 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const res = await raw(t.app, 'POST', '/v1/hessian', { ...json, 'content-encoding': 'gzip' }, bomb);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body.toString()).error).toBe('payload_too_large');
    const after = await t.http().post('/v1/hessian').send(seed.request);
    expect(after.status).toBe(200);
  });

  it('a body that is not what its Content-Encoding says is a 400; an unknown encoding a 415 naming the accepted ones', async () => {
    const corrupt = await raw(t.app, 'POST', '/v1/hessian', { ...json, 'content-encoding': 'gzip' }, Buffer.from(JSON.stringify(seed.request)));
    expect(corrupt.status).toBe(400);
    expect(JSON.parse(corrupt.body.toString()).error).toBe('invalid_compressed_body');
    const unknown = await raw(t.app, 'POST', '/v1/hessian', { ...json, 'content-encoding': 'compress' }, Buffer.from(JSON.stringify(seed.request)));
    expect(unknown.status).toBe(415);
    const error = JSON.parse(unknown.body.toString());
    expect(error.error).toBe('unsupported_content_encoding');
    expect(error.message).toBe("Content-Encoding 'compress' is not supported; accepted: br, gzip, deflate, identity");
  });

  it("compressed JSON, NDJSON, .npy and float32 answers decompress to the uncompressed answer's bytes", async () => {
    const created = await t.http().post('/v1/jobs').send(mlpRequest([6, 8, 3], 16));
    expect(created.status).toBe(202);
    const id = created.body.id;
    await pollJob(t.http, id, (job) => job.status === 'succeeded');
    const forms: [string, string][] = [
      [`/v1/jobs/${id}/result`, 'application/json'],
      [`/v1/jobs/${id}/result`, 'application/x-npy'],
      [`/v1/jobs/${id}/result`, 'application/octet-stream'],
      [`/v1/jobs/${id}/stream`, 'application/x-ndjson'],
      [`/v1/jobs/${id}/stream`, 'application/octet-stream'],
    ];
    for (const [path, accept] of forms) {
      const plain = await raw(t.app, 'GET', path, { accept });
      expect(plain.status).toBe(200);
      expect(plain.headers['content-encoding']).toBeUndefined();
      for (const encoding of ['gzip', 'deflate', 'br']) {
        const packed = await raw(t.app, 'GET', path, { accept, 'accept-encoding': encoding });
        expect(packed.status, `${accept} ${encoding}`).toBe(200);
        expect(packed.headers['content-encoding'], `${accept} ${encoding}`).toBe(encoding);
        expect(packed.headers.vary).toMatch(/accept-encoding/i);
        expect(decode[encoding](packed.body).equals(plain.body), `${accept} ${encoding}`).toBe(true);
      }
    }
    // The synchronous answer too (its meta.elapsedMs differs from call to call; the matrix does not).
    const packed = await raw(t.app, 'POST', '/v1/hessian', { ...json, 'accept-encoding': 'gzip' }, JSON.stringify(larger.request));
    expect(packed.headers['content-encoding']).toBe('gzip');
    expectJsonMatchesFixture(JSON.parse(gunzipSync(packed.body).toString()), larger);
    const tiny = await raw(t.app, 'POST', '/v1/hessian', { ...json, 'accept-encoding': 'gzip' }, JSON.stringify(seed.request));
    expect(tiny.headers['content-encoding']).toBeUndefined();
    expect(Number(tiny.headers['content-length'])).toBeLessThan(1024);
    expectJsonMatchesFixture(JSON.parse(tiny.body.toString()), seed);
  });

  it('a compressed NDJSON stream still streams: its first rows arrive before the job has finished', async () => {
    // P = 16730 takes seconds even on the fast path; a batch of 48 keeps the body under this app's 64 KiB limit.
    const created = await t.http().post('/v1/jobs').send(mlpRequest([30, 110, 110, 10], 48));
    expect(created.status).toBe(202);
    const id = created.body.id;
    const { port } = t.app.server.address() as AddressInfo;
    try {
      const first = await new Promise<{ line: string; at: number }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: `/v1/jobs/${id}/stream`, headers: { 'accept-encoding': 'gzip' } }, (res) => {
          if (res.headers['content-encoding'] !== 'gzip') reject(new Error(`not gzip: ${res.statusCode} ${JSON.stringify(res.headers)}`));
          const gunzip = res.pipe(createGunzip());
          let text = '';
          gunzip.on('data', (chunk: Buffer) => {
            text += chunk.toString();
            const newline = text.indexOf('\n');
            if (newline >= 0) {
              resolve({ line: text.slice(0, newline), at: Date.now() });
              req.destroy();
            }
          });
          gunzip.on('error', reject);
        });
        req.on('error', reject); // ignored once resolved (the destroy above)
        req.end();
      });
      expect(JSON.parse(first.line).offset).toBe(0);
      const job = (await t.http().get(`/v1/jobs/${id}`)).body;
      // Still running then, or finished only after the first line had arrived (same clock: one process).
      if (job.finishedAt !== null) expect(first.at).toBeLessThan(Date.parse(job.finishedAt));
      else expect(job.progress).toBeLessThan(1);
    } finally {
      await t.http().delete(`/v1/jobs/${id}`);
    }
  });

  it('Accept q-values decide the form; 406 (naming the accepted forms) when nothing acceptable', async () => {
    const post = (accept: string) => t.http().post('/v1/hessian').set('accept', accept).set('accept-encoding', 'identity').send(seed.request);
    const cases: [string, RegExp][] = [
      ['application/x-npy;q=0.1, application/json', /^application\/json/],
      ['application/json;q=0.2, application/x-npy', /^application\/x-npy/],
      ['application/json;q=0.5, application/octet-stream;q=0.9, application/x-npy;q=0.7', /^application\/octet-stream/],
      ['text/html, */*;q=0.1', /^application\/json/],
    ];
    for (const [accept, type] of cases) {
      const res = await post(accept);
      expect(res.status, accept).toBe(200);
      expect(res.headers['content-type'], accept).toMatch(type);
    }
    for (const accept of ['text/html', 'application/json;q=0', 'application/*;q=0']) {
      const res = await post(accept);
      expect(res.status, accept).toBe(406);
      expect(res.body.error).toBe('not_acceptable');
      expect(res.body.message).toContain('application/json, application/octet-stream, application/x-npy');
    }
    // Accept-Encoding q-values too: br preferred over gzip here.
    const answer = await raw(t.app, 'POST', '/v1/hessian', { ...json, 'accept-encoding': 'gzip;q=0.5, br' }, JSON.stringify(larger.request));
    expect(answer.headers['content-encoding']).toBe('br');
  });

  it('an unknown activation, loss or layer type is named, with the accepted values', async () => {
    const clone = () => JSON.parse(JSON.stringify(seed.request));
    const bad: [(b: any) => void, string, RegExp][] = [
      [(b) => (b.loss = 'meanSquaredErr'), 'loss', /^loss: "meanSquaredErr" is not a known loss; accepted: meanSquaredError, .*binaryCrossentropy/],
      [(b) => (b.loss = { type: 'hubber', delta: 2 }), 'loss.type', /^loss\.type: "hubber" is not a known loss; accepted: .*huber/],
      [(b) => (b.model.layers[0].activation = 'sparkle'), 'model.layers[0].activation', /"sparkle" is not a known activation; accepted: linear, relu, .*softmax/],
      [(b) => (b.model.layers[0].activation = { type: 'sparkle', alpha: 1 }), 'model.layers[0].activation.type', /"sparkle" is not a known activation; accepted: linear/],
      [(b) => (b.model.layers[0].type = 'lstm'), 'model.layers[0].type', /"lstm" is not a supported layer type; accepted: dense, conv2d, .*concatenate/],
    ];
    for (const [change, path, message] of bad) {
      const body = clone();
      change(body);
      const res = await t.http().post('/v1/hessian').send(body);
      expect(res.status, path).toBe(400);
      expect(res.body.error).toBe('invalid_request');
      expect(res.body.details).toEqual([{ path, message: expect.stringMatching(message) }]);
      expect(res.body.message).toMatch(message);
    }
    // A bad field inside a known activation's object form is reported at that field.
    const body = clone();
    body.model.layers[0].activation = { type: 'elu', alpha: 'big' };
    const res = await t.http().post('/v1/hessian').send(body);
    expect(res.body.details[0].path).toBe('model.layers[0].activation.alpha');
  });

  it("the OpenAPI document's request example of each loss family computes a symmetric Hessian", async () => {
    for (const [name, { value }] of Object.entries(REQUEST_EXAMPLES)) {
      const res = await t.http().post('/v1/hessian').send(value);
      expect(res.status, name).toBe(200);
      const { hessian, size } = res.body;
      expect(hessian).toHaveLength(size);
      const transposed = hessian.map((_: number[], i: number) => hessian.map((row: number[]) => row[i]));
      expect(relativeError(hessian.flat(), transposed.flat()), name).toBeLessThan(1e-5);
    }
  });
});

describe('the error table is the one source of the documented errors', () => {
  const t = useApp({ WORKERS: 1 });

  it('every operation has an operationId; each error status lists its codes from the table, with an example', async () => {
    const doc = (await t.http().get('/openapi.json')).body;
    const ids = new Set<string>();
    for (const [path, operations] of Object.entries<any>(doc.paths)) {
      for (const [method, operation] of Object.entries<any>(operations)) {
        expect(operation.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/);
        expect(ids.has(operation.operationId)).toBe(false);
        ids.add(operation.operationId);
        for (const [status, response] of Object.entries<any>(operation.responses)) {
          if (Number(status) < 400 || path === '/ready') continue; // /ready's 503 is its readiness body
          const schema = response.content['application/json'].schema;
          const codes: string[] = schema.properties.error.enum;
          for (const code of codes) expect(ERRORS[code as keyof typeof ERRORS].status, `${path} ${code}`).toBe(Number(status));
          expect(codes).toContain(schema.examples[0].error);
          expect(schema.examples[0].message).toBe(ERRORS[schema.examples[0].error as keyof typeof ERRORS].example);
        }
        if (path.startsWith('/v1/')) expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '403', '429', '500']));
      }
    }
  });

  it("the README's Errors table lists every code with its status", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [code, { status }] of Object.entries(ERRORS)) expect(readme, code).toMatch(new RegExp(`\\| ${status} \\| [^\\n]*\`${code}\``));
  });
});
