/**
 * JOB_TIMEOUT_SECONDS (issue 7, point 1): a job that runs longer is stopped at once (its tasks in flight
 * are aborted, their threads replaced), recorded as failed with error kind "timeout"; a synchronous
 * request gets 504 job_timeout; the service computes correct answers afterwards.
 */
import { expect, it } from 'vitest';
import { eventually, expectJsonMatchesFixture, finishedJob, mlpRequest, useApp } from './api-helpers.js';
import { fixtures } from './helpers.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const t = useApp({ JOB_TIMEOUT_SECONDS: 2 });
// P = 14210 at batch 2048: far more than the 2 s limit on two cores (at batch 256 the native backend
// came close to it).
const long = mlpRequest([30, 100, 100, 10], 2048);

it('a job over the limit is failed with kind "timeout" within moments of the limit, not after its blocks', async () => {
  const job = await finishedJob(t, long);
  expect(job.status).toBe('failed');
  expect(job.error).toEqual({ kind: 'timeout', message: 'the job ran longer than JOB_TIMEOUT_SECONDS (2 s) and was stopped' });
  expect(job.progress).toBeLessThan(1);
  const ranMs = Date.parse(job.finishedAt) - Date.parse(job.startedAt);
  expect(ranMs).toBeGreaterThanOrEqual(2000);
  expect(ranMs).toBeLessThan(7000); // stopped by the timer, not when a block happened to end
  const result = await t.http().get(`/v1/jobs/${job.id}/result`);
  expect(result.status).toBe(409);
  expect(result.body.message).toMatch(/JOB_TIMEOUT_SECONDS/);
});

it('a synchronous request over the limit gets 504 job_timeout, then small requests are answered correctly', async () => {
  const res = await t.http().post('/v1/hessian').send(long);
  expect(res.status).toBe(504);
  expect(res.body).toMatchObject({ error: 'job_timeout', message: 'the job ran longer than JOB_TIMEOUT_SECONDS (2 s) and was stopped' });
  // The aborted threads' replacements load TF.js as they start; on a loaded machine that can take
  // longer than this file's 2 s limit, which also counts a job's wait for a thread.
  await eventually(async () => (await t.http().post('/v1/hessian').send(seed.request)).status === 200, 60_000);
  for (let i = 0; i < 3; i++) {
    const ok = await t.http().post('/v1/hessian').send(seed.request);
    expect(ok.status).toBe(200);
    expectJsonMatchesFixture(ok.body, seed);
  }
});
