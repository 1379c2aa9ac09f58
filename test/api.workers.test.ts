/**
 * A broken worker is replaced (issue 7, point 2): a request that traps the WebAssembly heap fails alone
 * with a JSON error, its thread ends and piscina starts another, and the next requests get correct
 * answers. The trap is real: the 20 KB body (1 -> 1 -> 524288 units, 2048 rows) asks for a
 * [2048, 524288] float32 tensor, 4 GiB, which a wasm heap cannot address. Admission would refuse it
 * (test/api.admission.test.ts), so this app's memory budget is raised to let it reach a worker.
 */
import { expect, it } from 'vitest';
import { expectJsonMatchesFixture, pollJob, sleep, useApp } from './api-helpers.js';
import { fixtures } from './helpers.js';

const cases = fixtures();
const seed = cases.find((c) => c.name === 'seed_2x2_linear_mse')!;
const larger = cases.find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;

const t = useApp({ HESSIAN_BACKEND: 'wasm', MAX_WORKER_MEMORY_MB: 1_000_000 });

const trapBody = {
  model: { inputShape: [1], seed: 1, layers: [{ type: 'dense', units: 1 }, { type: 'dense', units: 524288 }] },
  loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true },
  data: { x: Array.from({ length: 2048 }, (_, b) => [b / 2048]), y: Array.from({ length: 2048 }, (_, b) => b) },
  wrt: ['dense_1/kernel'],
};

/** The replacements the /metrics counter reports, once it reaches `expected` (or after 5 s). */
async function replacements(expected: number): Promise<number> {
  let count = -1;
  for (let i = 0; i < 100 && count !== expected; i++) {
    const text = (await t.http().get('/metrics')).text;
    count = Number(/^hessian_worker_replacements_total (\d+)$/m.exec(text)![1]);
    if (count !== expected) await sleep(50);
  }
  return count;
}

/** /ready's count of live compute threads, once it is back to `expected` (a replacement takes a moment). */
async function liveWorkers(expected: number): Promise<number> {
  let workers = -1;
  for (let i = 0; i < 100 && workers !== expected; i++) {
    workers = (await t.http().get('/ready')).body.workers;
    if (workers !== expected) await sleep(50);
  }
  return workers;
}

it('the wasm trap fails only its request (JSON 500 naming the failure) and the thread is replaced', async () => {
  expect(await replacements(0)).toBe(0);
  const res = await t.http().post('/v1/hessian').send(trapBody);
  expect(res.status).toBe(500);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body.error).toBe('internal');
  expect(res.body.message).toMatch(/the compute worker failed \(RuntimeError: .+\) and was replaced/);
  expect(await liveWorkers(2)).toBe(2);
  expect(await replacements(1)).toBe(1);
});

it('the same body as a job: the job fails with that message, the service goes on', async () => {
  const submitted = await t.http().post('/v1/jobs').send(trapBody);
  expect(submitted.status).toBe(202);
  const seen = await pollJob(t.http, submitted.body.id, (j) => ['succeeded', 'failed', 'cancelled'].includes(j.status));
  const last = seen[seen.length - 1];
  expect(last.status).toBe('failed');
  expect(last.error.message).toMatch(/the compute worker failed \(RuntimeError: .+\) and was replaced/);
  expect(await liveWorkers(2)).toBe(2);
  expect(await replacements(2)).toBe(2);
});

it('afterwards every worker computes correct answers: sync requests and a job spread over both threads', async () => {
  for (let i = 0; i < 4; i++) {
    const res = await t.http().post('/v1/hessian').send(seed.request);
    expect(res.status).toBe(200);
    expectJsonMatchesFixture(res.body, seed);
  }
  const job = await t.http().post('/v1/jobs').send(larger.request);
  expect(job.status).toBe(202);
  await pollJob(t.http, job.body.id, (j) => j.status === 'succeeded');
  expectJsonMatchesFixture((await t.http().get(`/v1/jobs/${job.body.id}/result`)).body, larger);
  expect((await t.http().get('/ready')).body.status).toBe('ready');
});
