/**
 * Small work is not stuck behind big work (issue 7 point 4, issue 10 point 5): a small synchronous
 * request is computed whole, on the HTTP thread when tiny (the inline path, INLINE_MAX_FLOPS) or in the
 * small lane's own thread, and answered from memory, so a 2x2 request answers, with correct values,
 * while a long job holds the pool; it leaves nothing on disk. /ready probes compute through that lane.
 */
import { readdir } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { checkNpyHeader, decodeFloat32LE, expectJsonMatchesFixture, expectMatrixMatchesFixture, mlpRequest, rawBody, startApp, useApp } from './api-helpers.js';
import { fixtures } from './helpers.js';

const cases = fixtures();
const seed = cases.find((c) => c.name === 'seed_2x2_linear_mse')!;
const larger = cases.find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
const t = useApp();

it('a 2x2 request answers correctly while a long job runs, before that job ends', async () => {
  const long = await t.http().post('/v1/jobs').send(mlpRequest([20, 64, 64, 10], 512));
  expect(long.status).toBe(202);
  for (let i = 0; i < 400 && (await t.http().get(`/v1/jobs/${long.body.id}`)).body.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 25));
  const latencies: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const res = await t.http().post('/v1/hessian').send(seed.request);
    latencies.push(performance.now() - started);
    expect(res.status).toBe(200);
    expectJsonMatchesFixture(res.body, seed);
  }
  const job = (await t.http().get(`/v1/jobs/${long.body.id}`)).body;
  expect(job.status).toBe('running'); // every small answer came while the job held the pool
  console.log(`2x2 behind a running job: ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`);
  expect(Math.max(...latencies)).toBeLessThan(5000); // "well under 1 s" on a quiet machine; bounded loosely for a loaded one
  await t.http().delete(`/v1/jobs/${long.body.id}`);
});

it('small answers in all three forms come from memory and leave nothing in RESULTS_DIR', async () => {
  const before = await readdir(t.dir);
  const json = await t.http().post('/v1/hessian').send(larger.request);
  expect(json.status).toBe(200);
  expectJsonMatchesFixture(json.body, larger);
  const P = larger.expected.gradient.length;
  const binary = await t.http().post('/v1/hessian').set('accept', 'application/octet-stream').buffer(true).parse(rawBody).send(larger.request);
  expect(binary.status).toBe(200);
  expect(Number(binary.headers['x-hessian-size'])).toBe(P);
  expectMatrixMatchesFixture(decodeFloat32LE(binary.body), larger);
  const npy = await t.http().post('/v1/hessian').set('accept', 'application/x-npy').buffer(true).parse(rawBody).send(larger.request);
  expect(npy.status).toBe(200);
  const offset = checkNpyHeader(npy.body, P, P);
  expectMatrixMatchesFixture(decodeFloat32LE(npy.body.subarray(offset)), larger);
  expect(await readdir(t.dir)).toEqual(before);
});

it('a bad small request is still a 400 or 422 naming the problem', async () => {
  const bad = structuredClone(seed.request);
  bad.data.y[1] = [0];
  const res = await t.http().post('/v1/hessian').send(bad);
  expect(res.status).toBe(400);
  expect(res.body.message).toMatch(/data\.y\[1\]/);
  const overflow = { model: { inputShape: [1], layers: [{ type: 'dense', units: 1, useBias: false, kernel: [[1e19]], kernelRegularizer: { l2: 100 } }] }, loss: 'meanSquaredError', data: { x: [[0]], y: [[0]] } };
  const numerical = await t.http().post('/v1/hessian').send(overflow);
  expect(numerical.status).toBe(422);
  expect(numerical.body.message).toMatch(/the loss is/);
});

it('a tiny request is computed inline (meta.backend js, float64 rounded to float32); INLINE_MAX_FLOPS 0 or a larger one goes to the lane', async () => {
  const inline = await t.http().post('/v1/hessian').send(seed.request);
  expect(inline.status).toBe(200);
  expectJsonMatchesFixture(inline.body, seed);
  expect(inline.body.meta).toMatchObject({ backend: 'js', method: 'rOperator' });
  const binary = await t.http().post('/v1/hessian').set('accept', 'application/octet-stream').buffer(true).parse(rawBody).send(seed.request);
  expect(binary.headers['x-hessian-backend']).toBe('js');
  expectMatrixMatchesFixture(decodeFloat32LE(binary.body), seed);
  const larger = await t.http().post('/v1/hessian').send(mlpRequest([3, 8, 2], 64)); // about 1.3e6 operations inline: over the default 1e5
  expect(larger.status).toBe(200);
  expect(larger.body.meta.backend).toBe(t.config.SMALL_LANE_BACKEND);
  const noInline = await startApp({ INLINE_MAX_FLOPS: 0, WORKERS: 1 });
  try {
    const lane = await noInline.http().post('/v1/hessian').send(seed.request);
    expect(lane.status).toBe(200);
    expectJsonMatchesFixture(lane.body, seed);
    expect(lane.body.meta.backend).toBe(noInline.config.SMALL_LANE_BACKEND);
  } finally {
    await noInline.close();
  }
});

it('/ready probes compute; once draining it says unavailable, and small requests get 503', async () => {
  const ready = await t.http().get('/ready');
  expect(ready.status).toBe(200);
  expect(ready.body).toMatchObject({ status: 'ready', problem: null });
  await t.app.drain();
  const draining = await t.http().get('/ready');
  expect(draining.status).toBe(503);
  expect(draining.body).toMatchObject({ status: 'unavailable', problem: 'the server is shutting down' });
  const refused = await t.http().post('/v1/hessian').send(seed.request);
  expect(refused.status).toBe(503);
  expect(refused.body.error).toBe('shutting_down');
});
