/**
 * A broken worker is replaced (issue 7, point 2): a request that traps the WebAssembly heap fails alone
 * with a JSON error, its thread ends and piscina starts another, and the next requests get correct
 * answers. The trap is real: the 20 KB body (1 -> 1 -> 524288 units, 2048 rows) asks for a
 * [2048, 524288] float32 tensor, 4 GiB, which a wasm heap cannot address. Admission would refuse it
 * (test/api.admission.test.ts), so this app's memory budget is raised to let it reach a worker.
 */
import { expect, it } from 'vitest';
import { eventually, expectJsonMatchesFixture, finishedJob, pollJob, useApp } from './api-helpers.js';
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

/** Threads replaced so far, as the /metrics counter reports them. */
const replacements = async () => Number(/^hessian_worker_replacements_total (\d+)$/m.exec((await t.http().get('/metrics')).text)![1]);
/** Compute threads alive, as /ready reports them. */
const liveWorkers = async () => (await t.http().get('/ready')).body.workers;
/** Both, once they reach the expected values (a replacement takes a moment). */
const expectThreads = (replaced: number) => eventually(async () => (await replacements()) === replaced && (await liveWorkers()) === 2);

it('the wasm trap fails only its request (JSON 500 naming the failure) and the thread is replaced', async () => {
  expect(await replacements()).toBe(0);
  const res = await t.http().post('/v1/hessian').send(trapBody);
  expect(res.status).toBe(500);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body.error).toBe('internal');
  expect(res.body.message).toMatch(/the compute worker failed \(RuntimeError: .+\) and was replaced/);
  await expectThreads(1);
});

it('the same body as a job: the job fails with that message, the service goes on', async () => {
  const last = await finishedJob(t, trapBody);
  expect(last.status).toBe('failed');
  expect(last.error.message).toMatch(/the compute worker failed \(RuntimeError: .+\) and was replaced/);
  await expectThreads(2);
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
