/**
 * Curvature jobs: POST /v1/jobs with the body of POST /v1/curvature. Each quantity family's job answers
 * what the synchronous endpoint answers and matches the float64 PyTorch references
 * (test/fixtures/curvature.json); progress moves while it runs; DELETE cancels it; a restart keeps it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { checkNpyHeader, decodeFloat32LE, freshDir, MEDIUM, mlpRequest, pollJob, rawBody, removeDir, startApp, useApp, type TestApp } from './api-helpers.js';
import { curvatureCases } from './curvature-helpers.js';
import { relativeError } from './helpers.js';
import { JOB_EXAMPLES } from '../src/schemas/examples.js';

const t = useApp({ MAX_PARAMETERS: 50 });
const cases = curvatureCases();
const threeLayers = cases.find((c) => c.name === 'sigmoid_softplus_mse_3layers')!; // P = 59
const withWrt = cases.find((c) => c.name === 'gelu_sparse_logits_wrt')!;

const isFinished = (job: { status: string }) => ['succeeded', 'failed', 'cancelled'].includes(job.status);
const raw = (app: TestApp, path: string, accept: string) => app.http().get(path).set('accept', accept).buffer(true).parse(rawBody);

/** Queues a job, polls it to its end; the job as last seen and every progress seen. */
async function runJob(app: TestApp, body: object) {
  const created = await app.http().post('/v1/jobs').send(body);
  expect(created.status).toBe(202);
  expect(created.headers.location).toBe(`/v1/jobs/${created.body.id}`);
  const seen = await pollJob(app.http, created.body.id, isFinished);
  return { job: seen[seen.length - 1], progress: seen.map((j) => j.progress as number) };
}

/** The job's JSON answer and the synchronous endpoint's for the same body, as text. */
async function bothAnswers(app: TestApp, body: object) {
  const { job } = await runJob(app, body);
  expect(job.status).toBe('succeeded');
  expect(job.progress).toBe(1);
  const fromJob = await app.http().get(`/v1/jobs/${job.id}/result`);
  expect(fromJob.status).toBe(200);
  expect(fromJob.headers['content-type']).toMatch(/^application\/json/);
  const direct = await app.http().post('/v1/curvature').send(body);
  expect(direct.status).toBe(200);
  return { job, fromJob: fromJob.body, direct: direct.body };
}

/** The two answers agree in every field (the same computation on the same backend), meta's time aside. */
function expectSameAnswer(fromJob: any, direct: any) {
  const { meta: jobMeta, ...jobFields } = fromJob;
  const { meta: directMeta, ...directFields } = direct;
  expect(jobFields).toEqual(directFields);
  expect({ ...jobMeta, elapsedMs: 0 }).toEqual({ ...directMeta, elapsedMs: 0 });
}

describe('POST /v1/jobs with a curvature body', () => {
  it('hvp: the job says what it computes, and answers the products of /v1/curvature', async () => {
    const body = { ...withWrt.request, quantity: 'hvp', vectors: withWrt.expected.vectors };
    const { job, fromJob, direct } = await bothAnswers(t, body);
    expect(job.quantity).toBe('hvp');
    expect(job.matrix).toBe('hessian');
    expect(job.size).toBe(withWrt.expected.size);
    expectSameAnswer(fromJob, direct);
    expect(relativeError(fromJob.products.flat(), withWrt.expected.hessian.products.flat())).toBeLessThan(1e-4);
  });

  it('ggn: JSON, .npy and float32 as /v1/curvature gives them, and a heatmap', async () => {
    const body = { ...withWrt.request, quantity: 'ggn' };
    const { job, fromJob, direct } = await bothAnswers(t, body);
    expect(job.matrix).toBeUndefined();
    expectSameAnswer(fromJob, direct);
    const reference = withWrt.expected.ggn.matrix.flat();
    expect(relativeError(fromJob.ggn.flat(), reference)).toBeLessThan(1e-4);
    const size = withWrt.expected.size;
    const npy = await raw(t, `/v1/jobs/${job.id}/result`, 'application/x-npy');
    expect(npy.status).toBe(200);
    const directNpy = await t.http().post('/v1/curvature').set('accept', 'application/x-npy').send(body).buffer(true).parse(rawBody);
    expect(Buffer.compare(npy.body, directNpy.body)).toBe(0);
    const offset = checkNpyHeader(npy.body, size, size);
    expect(relativeError(decodeFloat32LE(npy.body.subarray(offset)), reference)).toBeLessThan(1e-4);
    const binary = await raw(t, `/v1/jobs/${job.id}/result`, 'application/octet-stream');
    expect(binary.headers['x-hessian-size']).toBe(String(size));
    expect(relativeError(decodeFloat32LE(binary.body), reference)).toBeLessThan(1e-4);
    const png = await raw(t, `/v1/jobs/${job.id}/result`, 'image/png');
    expect(png.status).toBe(200);
    expect(png.headers['content-type']).toBe('image/png');
    expect(png.body.subarray(1, 4).toString('latin1')).toBe('PNG');
  });

  it('fisher as JSON', async () => {
    const { fromJob, direct } = await bothAnswers(t, { ...withWrt.request, quantity: 'fisher' });
    expectSameAnswer(fromJob, direct);
    expect(relativeError(fromJob.fisher.flat(), withWrt.expected.fisher.matrix.flat())).toBeLessThan(1e-4);
  });

  it('diagonal and trace past MAX_PARAMETERS', async () => {
    const { request, expected } = threeLayers;
    const diagonal = await bothAnswers(t, { ...request, quantity: 'diagonal', matrix: 'ggn' });
    expectSameAnswer(diagonal.fromJob, diagonal.direct);
    expect(relativeError(diagonal.fromJob.diagonal, expected.ggn.diagonal)).toBeLessThan(1e-4);
    const trace = await bothAnswers(t, { ...request, quantity: 'trace' });
    expectSameAnswer(trace.fromJob, trace.direct);
    expect(Math.abs(trace.fromJob.trace - expected.hessian.trace)).toBeLessThan(1e-4 * Math.max(...expected.hessian.diagonal.map(Math.abs)));
    const hutchinson = await bothAnswers(t, { ...request, quantity: 'trace', method: 'hutchinson', samples: 200 });
    expectSameAnswer(hutchinson.fromJob, hutchinson.direct);
    expect(Math.abs(hutchinson.fromJob.trace - expected.hessian.trace)).toBeLessThan(4 * hutchinson.fromJob.stdError);
  });

  it('eigenvalues with eigenvectors', async () => {
    const { request, expected } = threeLayers;
    const { fromJob, direct } = await bothAnswers(t, { ...request, quantity: 'eigenvalues', k: 2, vectors: true });
    expectSameAnswer(fromJob, direct);
    expect(relativeError(fromJob.eigenvalues, expected.hessian.eigenvalues.slice(-2).reverse())).toBeLessThan(1e-3);
    expect(fromJob.converged).toBe(true);
    expect(fromJob.eigenvectors).toHaveLength(2);
    const reference = expected.hessian.eigenvectors.slice(-2).reverse();
    fromJob.eigenvectors.forEach((v: number[], i: number) => {
      const overlap = v.reduce((s, x, j) => s + x * reference[i][j], 0);
      expect(Math.abs(overlap)).toBeGreaterThan(0.999);
    });
  });

  it('density: JSON as /v1/curvature answers it, and its plot', async () => {
    const { request, expected } = threeLayers;
    const body = { ...request, quantity: 'density', runs: 3, steps: 20, gridPoints: 200 };
    const { job, fromJob, direct } = await bothAnswers(t, body);
    expectSameAnswer(fromJob, direct);
    const step = fromJob.grid[1] - fromJob.grid[0];
    expect(fromJob.density.reduce((s: number, d: number) => s + d * step, 0)).toBeCloseTo(1, 3);
    const mean = fromJob.nodes.flatMap((run: number[], r: number) => run.map((node, i) => node * fromJob.weights[r][i])).reduce((a: number, b: number) => a + b, 0) / 3;
    expect(Math.abs(mean - expected.hessian.trace / expected.size)).toBeLessThan(0.5 * Math.abs(expected.hessian.trace / expected.size) + 1e-3);
    const png = await raw(t, `/v1/jobs/${job.id}/result`, 'image/png');
    const directPng = await t.http().post('/v1/curvature').set('accept', 'image/png').send(body).buffer(true).parse(rawBody);
    expect(png.status).toBe(200);
    expect(Buffer.compare(png.body, directPng.body)).toBe(0);
    // Only JSON and the plot: a density has no matrix.
    expect((await raw(t, `/v1/jobs/${job.id}/result`, 'application/x-npy')).status).toBe(406);
  });

  it("the OpenAPI document's curvature job example: the seed case's top eigenvalue, twice (H = A ⊗ I₂)", async () => {
    const { job } = await runJob(t, JOB_EXAMPLES.eigenvalues.value);
    const result = await t.http().get(`/v1/jobs/${job.id}/result`);
    // A = 2/(B·units) XᵀX = [[41/12, -1/4], [-1/4, 7/4]]; its larger eigenvalue in closed form.
    const [a, b, d] = [41 / 12, -1 / 4, 7 / 4];
    const top = (a + d) / 2 + Math.sqrt(((a - d) / 2) ** 2 + b * b);
    expect(relativeError(result.body.eigenvalues, [top, top])).toBeLessThan(1e-4);
  });

  it('its stream is a 409 naming /result; a bad curvature body is a 400 naming the field, as on /v1/curvature', async () => {
    const { job } = await runJob(t, { ...threeLayers.request, quantity: 'diagonal' });
    const stream = await t.http().get(`/v1/jobs/${job.id}/stream`);
    expect(stream.status).toBe(409);
    expect(stream.body.error).toBe('not_streamable');
    expect(stream.body.message).toContain(`/v1/jobs/${job.id}/result`);
    const bad = await t.http().post('/v1/jobs').send({ ...threeLayers.request, quantity: 'eigenvalues', k: 0 });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('k');
    const misplaced = await t.http().post('/v1/jobs').send({ ...threeLayers.request, quantity: 'diagonal', samples: 5 });
    expect(misplaced.status).toBe(400);
    expect(misplaced.body.message).toContain('samples does not apply');
    const tooBig = await t.http().post('/v1/jobs').send({ ...threeLayers.request, quantity: 'ggn' });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error).toBe('too_many_parameters');
  });
});

describe('a long curvature job', () => {
  // P = 6154; Hutchinson with 3000 probes: seconds of products, in many batches.
  const long = { ...mlpRequest(MEDIUM.sizes, MEDIUM.batch), quantity: 'trace', method: 'hutchinson', samples: 3000 };
  const apps: TestApp[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const dir of dirs) await removeDir(dir);
  });

  it('shows its progress moving, then succeeds', async () => {
    const { job, progress } = await runJob(t, long);
    expect(job.status).toBe('succeeded');
    expect(progress.some((p) => p > 0 && p < 1)).toBe(true);
    for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]);
    expect(progress[progress.length - 1]).toBe(1);
  });

  it('DELETE cancels it mid-run: the record says so, its result is a 409, and the next job succeeds', async () => {
    const created = await t.http().post('/v1/jobs').send(long);
    const id = created.body.id;
    await pollJob(t.http, id, (job) => job.progress > 0);
    const deleted = await t.http().delete(`/v1/jobs/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.status).toBe('cancelled');
    expect(deleted.body.error.message).toBe('cancelled by a DELETE request');
    expect(deleted.body.progress).toBeLessThan(1);
    const result = await t.http().get(`/v1/jobs/${id}/result`);
    expect(result.status).toBe(409);
    expect(result.body.error).toBe('job_cancelled');
    // The aborted task's thread was replaced: a new job computes correctly.
    const { fromJob } = await bothAnswers(t, { ...threeLayers.request, quantity: 'diagonal', matrix: 'ggn' });
    expect(relativeError(fromJob.diagonal, threeLayers.expected.ggn.diagonal)).toBeLessThan(1e-4);
  });

  it('fails with the timeout past JOB_TIMEOUT_SECONDS', async () => {
    const app = await startApp({ JOB_TIMEOUT_SECONDS: 1 });
    apps.push(app);
    dirs.push(app.dir);
    const { job } = await runJob(app, { ...long, samples: 100_000 });
    expect(job.status).toBe('failed');
    expect(job.error.kind).toBe('timeout');
    expect((await app.http().get(`/v1/jobs/${job.id}/result`)).body.error).toBe('job_failed');
  });

  it("counts under MAX_RESULTS_BYTES: a document's upper bound until written, then its size; past the quota a 507", async () => {
    const app = await startApp({ MAX_RESULTS_BYTES: 30_000 });
    apps.push(app);
    dirs.push(app.dir);
    const { request, expected } = threeLayers;
    const units = (count: number) => Array.from({ length: count }, (_, i) => Array.from({ length: expected.size }, (_, j) => (i === j ? 1 : 0)));
    // 20 products of P = 59: an upper bound of 8 KB + 20 x 59 x 25 bytes, past the quota alone.
    const refused = await app.http().post('/v1/jobs').send({ ...request, quantity: 'hvp', vectors: units(20) });
    expect(refused.status).toBe(507);
    expect(refused.body.error).toBe('insufficient_storage');
    expect(refused.body.message).toContain('MAX_RESULTS_BYTES quota of 30000 bytes');
    // 5 fit (about 16 KB bound); written, the result holds its real size (a few KB), so 5 more fit beside it,
    // which two bounds would not.
    const first = await runJob(app, { ...request, quantity: 'hvp', vectors: units(5) });
    expect(first.job.status).toBe('succeeded');
    const second = await runJob(app, { ...request, quantity: 'hvp', vectors: units(5) });
    expect(second.job.status).toBe('succeeded');
    const products = (await app.http().get(`/v1/jobs/${second.job.id}/result`)).body.products;
    // H e_i is row i of H.
    expect(relativeError(products.flat(), expected.hessian.matrix.slice(0, 5).flat())).toBeLessThan(1e-4);
  });

  it("another API key's curvature job is a 404, as any job", async () => {
    const [keyA, keyB] = ['key-a-0123456789', 'key-b-9876543210'];
    const app = await startApp({ API_KEYS: `${keyA},${keyB}` });
    apps.push(app);
    dirs.push(app.dir);
    const created = await app.http().post('/v1/jobs').set('authorization', `Bearer ${keyA}`).send({ ...threeLayers.request, quantity: 'diagonal' });
    expect(created.status).toBe(202);
    const id = created.body.id;
    for (const path of [`/v1/jobs/${id}`, `/v1/jobs/${id}/result`, `/v1/jobs/${id}/stream`]) {
      const res = await app.http().get(path).set('authorization', `Bearer ${keyB}`);
      expect(res.status, path).toBe(404);
      expect(res.body.error).toBe('not_found');
    }
    expect((await app.http().delete(`/v1/jobs/${id}`).set('authorization', `Bearer ${keyB}`)).status).toBe(404);
    expect((await app.http().get(`/v1/jobs/${id}`).set('authorization', `Bearer ${keyA}`)).status).toBe(200);
  });

  it('a restart keeps succeeded curvature jobs, their answers unchanged', async () => {
    const dir = await freshDir();
    dirs.push(dir);
    const first = await startApp({ RESULTS_DIR: dir, MAX_PARAMETERS: 50 });
    apps.push(first);
    const eigen = (await runJob(first, { ...threeLayers.request, quantity: 'eigenvalues', k: 2 })).job;
    const ggn = (await runJob(first, { ...withWrt.request, quantity: 'ggn' })).job;
    const eigenText = (await first.http().get(`/v1/jobs/${eigen.id}/result`).buffer(true)).text;
    const ggnNpy = (await raw(first, `/v1/jobs/${ggn.id}/result`, 'application/x-npy')).body;
    await first.close();

    const second = await startApp({ RESULTS_DIR: dir, MAX_PARAMETERS: 50 });
    apps.push(second);
    const again = await second.http().get(`/v1/jobs/${eigen.id}`);
    expect(again.body.status).toBe('succeeded');
    expect(again.body.quantity).toBe('eigenvalues');
    expect(again.body.progress).toBe(1);
    const eigenAgain = await second.http().get(`/v1/jobs/${eigen.id}/result`).buffer(true);
    expect(eigenAgain.text).toBe(eigenText);
    expect(relativeError(eigenAgain.body.eigenvalues, threeLayers.expected.hessian.eigenvalues.slice(-2).reverse())).toBeLessThan(1e-3);
    expect(Buffer.compare((await raw(second, `/v1/jobs/${ggn.id}/result`, 'application/x-npy')).body, ggnNpy)).toBe(0);
    const ggnJson = await second.http().get(`/v1/jobs/${ggn.id}/result`);
    expect(relativeError(ggnJson.body.ggn.flat(), withWrt.expected.ggn.matrix.flat())).toBeLessThan(1e-4);
    // Deleting it removes it, as any job.
    expect((await second.http().delete(`/v1/jobs/${eigen.id}`)).status).toBe(204);
    expect((await second.http().get(`/v1/jobs/${eigen.id}`)).status).toBe(404);
  });
});
