/**
 * Operations endpoints: /health, /ready, /metrics (Prometheus text), /openapi.json and /docs.
 */
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { defaultIntraOpThreads } from '../src/compute/index.js';
import { loadConfig } from '../src/config.js';
import {
  expectJsonMatchesFixture,
  freshDir,
  pollJob,
  removeDir,
  useApp,
  waitForReady,
} from './api-helpers.js';
import { fixtures } from './helpers.js';
import request from 'supertest';

const cases = fixtures();
const seed = cases.find((c) => c.name === 'seed_2x2_linear_mse')!;
const larger = cases.find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;

// Read before the app's pool sets it for its workers.
const operatorIntraOpThreads = process.env.TF_NUM_INTRAOP_THREADS;
const t = useApp();

/** The value of one sample line `name{labels} value` of a Prometheus text exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) found[pair[1]] = pair[2];
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('/health and /ready', () => {
  it('/health is ok', async () => {
    const res = await t.http().get('/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('/ready names the backend, dtype, worker count and the fallbacks taken', async () => {
    const res = await t.http().get('/ready');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ready');
    expect(['tensorflow', 'wasm', 'cpu']).toContain(res.body.backend);
    expect(res.body.dtype).toBe('float32');
    expect(res.body.workers).toBe(2);
    expect(Array.isArray(res.body.fallbacks)).toBe(true);
    for (const reason of res.body.fallbacks) expect(typeof reason).toBe('string');
    if (process.env.HESSIAN_BACKEND && process.env.HESSIAN_BACKEND !== 'auto') expect(res.body.backend).toBe(process.env.HESSIAN_BACKEND);
    if (res.body.backend === 'tensorflow') {
      // The library's version (the wheel's, e.g. 2.21.0; not tfjs-node's 4.22.0) and the configured threads.
      expect(res.body.tensorflowVersion).toMatch(/^2\.\d+\.\d+/);
      expect(res.body.intraOpThreads).toBe(Number(operatorIntraOpThreads) || defaultIntraOpThreads(t.config.WORKERS));
    } else {
      expect(res.body).toMatchObject({ tensorflowVersion: null, intraOpThreads: null });
    }
  });

  it('a new app answers /ready 503 "starting" (no backend) until its workers load, then 200', async () => {
    const dir = await freshDir();
    const app = await buildApp(loadConfig({}, { RESULTS_DIR: dir, WORKERS: 1, LOG_LEVEL: 'silent' }));
    try {
      await app.ready();
      const first = await request(app.server).get('/ready');
      expect([200, 503]).toContain(first.status);
      if (first.status === 503) expect(first.body).toMatchObject({ status: 'starting', backend: null, dtype: null, workers: 1 });
      else expect(first.body.status).toBe('ready');
      // Liveness does not wait for the backend.
      expect((await request(app.server).get('/health')).status).toBe(200);
      await waitForReady(() => request(app.server));
    } finally {
      await app.close();
      await removeDir(dir);
    }
  });

  it('echoes x-request-id, or makes one', async () => {
    const given = await t.http().get('/health').set('x-request-id', 'test-request-42');
    expect(given.headers['x-request-id']).toBe('test-request-42');
    const made = await t.http().get('/health');
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('/metrics', () => {
  it('counts requests by route and status, rows computed, jobs by status and the queue depth', async () => {
    const before = await t.http().get('/metrics');
    expect(before.status).toBe(200);
    expect(before.headers['content-type']).toMatch(/^text\/plain/);
    const rowsBefore = sample(before.text, 'hessian_rows_computed_total');
    expect(rowsBefore).toBeDefined();
    const okBefore = sample(before.text, 'hessian_http_requests_total', { method: 'POST', route: '/v1/hessian', status: '200' }) ?? 0;

    // Two synchronous answers, one job, one bad request.
    expect((await t.http().post('/v1/hessian').send(seed.request)).status).toBe(200);
    expect((await t.http().post('/v1/hessian').send(seed.request)).status).toBe(200);
    expect((await t.http().post('/v1/hessian').send({ model: {} })).status).toBe(400);
    const job = await t.http().post('/v1/jobs').send(larger.request);
    expect(job.status).toBe(202);
    await pollJob(t.http, job.body.id, (j) => j.status === 'succeeded');
    expectJsonMatchesFixture((await t.http().get(`/v1/jobs/${job.body.id}/result`)).body, larger);

    const after = await t.http().get('/metrics');
    const text = after.text;
    for (const name of ['hessian_http_requests_total', 'hessian_queue_depth', 'hessian_jobs', 'hessian_rows_computed_total', 'hessian_http_request_duration_seconds']) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
    expect(sample(text, 'hessian_http_requests_total', { method: 'POST', route: '/v1/hessian', status: '200' })).toBe(okBefore + 2);
    expect(sample(text, 'hessian_http_requests_total', { method: 'POST', route: '/v1/hessian', status: '400' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'hessian_http_requests_total', { method: 'POST', route: '/v1/jobs', status: '202' })).toBeGreaterThanOrEqual(1);
    // Every row of every Hessian computed since: 4 + 4 for the seed case, P for the job.
    const P = larger.expected.gradient.length;
    expect(sample(text, 'hessian_rows_computed_total')! - rowsBefore!).toBe(4 + 4 + P);
    expect(sample(text, 'hessian_queue_depth')).toBe(0);
    expect(sample(text, 'hessian_jobs', { status: 'succeeded' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'hessian_jobs', { status: 'running' })).toBe(0);
    expect(sample(text, 'hessian_jobs', { status: 'queued' })).toBe(0);
    for (const status of ['failed', 'cancelled']) expect(sample(text, 'hessian_jobs', { status })).toBeDefined();
  });
});

describe('/openapi.json and /docs', () => {
  it('documents every path, and its example request computes the seed Hessian', async () => {
    const res = await t.http().get('/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of ['/v1/hessian', '/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/result', '/v1/jobs/{id}/stream', '/health', '/ready', '/metrics']) {
      expect(Object.keys(doc.paths), path).toContain(path);
    }
    expect(Object.keys(doc.paths['/v1/hessian'])).toContain('post');
    expect(Object.keys(doc.paths['/v1/jobs'])).toContain('post');
    expect(Object.keys(doc.paths['/v1/jobs/{id}']).sort()).toEqual(['delete', 'get']);
    for (const form of ['application/json', 'application/octet-stream', 'application/x-npy']) {
      expect(Object.keys(doc.paths['/v1/hessian'].post.responses['200'].content)).toContain(form);
      expect(Object.keys(doc.paths['/v1/jobs/{id}/result'].get.responses['200'].content)).toContain(form);
    }
    for (const status of ['400', '406', '413', '422', '429']) expect(Object.keys(doc.paths['/v1/hessian'].post.responses)).toContain(status);

    // The request body's named examples start with the seed case of the fixtures.
    const example = doc.paths['/v1/hessian'].post.requestBody.content['application/json'].examples.seed.value;
    expect(example).toEqual(seed.request);
    const answer = await t.http().post('/v1/hessian').send(example);
    expect(answer.status).toBe(200);
    expectJsonMatchesFixture(answer.body, seed);
  });

  it('/docs serves the Swagger UI page', async () => {
    const res = await t.http().get('/docs').redirects(3);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toMatch(/<html/i);
    expect(res.text).toMatch(/swagger/i);
  });
});
