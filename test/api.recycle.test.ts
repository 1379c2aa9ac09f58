/**
 * Compute threads retired for their memory (WORKER_RECYCLE_MB, issue 7): a wasm heap grows to its
 * thread's largest task and never shrinks, so a thread whose heap passed the setting after a task is
 * replaced once idle. The task that grew it is answered (checked against a float64 reference), the
 * thread is replaced (/metrics), and the next answers match the fixtures' float64 references.
 */
import { describe, expect, it } from 'vitest';
import { eventually, expectJsonMatchesFixture, expectMatchesLinearReference, finishedJob, linearBody, linearReference, useApp, type TestApp } from './api-helpers.js';
import { fixtures } from './helpers.js';

const cases = fixtures();
const seed = cases.find((c) => c.name === 'seed_2x2_linear_mse')!;
const larger = cases.find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;

/** A counter of /metrics. */
const counter = async (t: TestApp, name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec((await t.http().get('/metrics')).text)![1]);
const recycles = (t: TestApp) => counter(t, 'hessian_worker_recycles_total');
const replacements = (t: TestApp) => counter(t, 'hessian_worker_replacements_total');

/** Every answer below goes through the pool (SMALL_JOB_FLOPS 0: no small lane). */
async function expectFixturesAnswered(t: TestApp) {
  for (const c of [seed, larger]) {
    const res = await t.http().post('/v1/hessian').send(c.request);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expectJsonMatchesFixture(res.body, c);
  }
  const job = await finishedJob(t, larger.request);
  expect(job.status).toBe('succeeded');
  expectJsonMatchesFixture((await t.http().get(`/v1/jobs/${job.id}/result`)).body, larger);
}

describe('a thread whose wasm heap grew past WORKER_RECYCLE_MB', () => {
  // A wasm heap starts at 16 MiB; small requests leave it there.
  const t = useApp({ HESSIAN_BACKEND: 'wasm', WORKERS: 1, WORKER_RECYCLE_MB: 24, SMALL_JOB_FLOPS: 0 });

  it('answers the task that grew it, then is replaced; the next answers are correct', async () => {
    await expectFixturesAnswered(t);
    expect(await recycles(t)).toBe(0);
    expect(await replacements(t)).toBe(0);

    // 6000 rows of 40 features: the passes over the batch take some 40 to 90 MiB of heap.
    const body = linearBody(6000);
    const job = await finishedJob(t, body);
    expect(job.status).toBe('succeeded');
    const result = await t.http().get(`/v1/jobs/${job.id}/result`);
    expectMatchesLinearReference(result.body, linearReference(body));

    await eventually(async () => (await recycles(t)) === 1 && (await replacements(t)) === 1 && (await t.http().get('/ready')).body.workers === 1);
    await expectFixturesAnswered(t);
    expect(await recycles(t)).toBe(1);
  }, 180_000);
});

describe('threads that retire after every task (WORKER_RECYCLE_MB 1)', () => {
  const t = useApp({ HESSIAN_BACKEND: 'wasm', WORKERS: 2, WORKER_RECYCLE_MB: 1, SMALL_JOB_FLOPS: 0 });

  it('lose no task: a job keeps its threads for its row blocks, other tasks move to fresh threads; every answer correct', async () => {
    for (let round = 0; round < 2; round++) await expectFixturesAnswered(t);
    expect(await recycles(t)).toBeGreaterThanOrEqual(4);
    expect(await replacements(t)).toBeGreaterThanOrEqual(4);
    expect((await t.http().get('/ready')).status).toBe(200);
  }, 180_000);
});
