/**
 * Every result endpoint in every content type against the float64 PyTorch fixtures
 * (test/fixtures/cases.json): POST /v1/hessian, GET /v1/jobs/:id/result and GET /v1/jobs/:id/stream.
 */
import { parse as parseNpy } from 'npyjs';
import { describe, expect, it } from 'vitest';
import {
  checkNpyHeader,
  decodeFloat32LE,
  expectJsonMatchesFixture,
  expectMatrixMatchesFixture,
  lossError,
  pollJob,
  rawBody,
  reassembleNdjson,
  TOLERANCE,
  useApp,
} from './api-helpers.js';
import { fixtures, relativeError, type FixtureCase } from './helpers.js';

const cases = fixtures();
const byName = (name: string) => cases.find((c) => c.name === name)!;
const seed = byName('seed_2x2_linear_mse');

// 20 concurrent synchronous requests each go through the job queue: leave room for all of them.
const t = useApp({ MAX_QUEUED_JOBS: 32 });

const postHessian = (body: unknown, accept?: string) => {
  const req = t.http().post('/v1/hessian').send(body as object);
  return accept ? req.set('accept', accept) : req;
};
const binary = (req: ReturnType<typeof postHessian>) => req.buffer(true).parse(rawBody);

/** Parses .npy bytes with npyjs (an independent parser) and checks the header by hand. */
function readNpy(bytes: Buffer, size: number): Float32Array {
  checkNpyHeader(bytes, size, size);
  const array = parseNpy(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
  expect(array.dtype).toBe('f4');
  expect(array.shape).toEqual([size, size]);
  expect(array.fortranOrder).toBe(false);
  expect(array.data).toBeInstanceOf(Float32Array);
  return array.data as Float32Array;
}

function expectBinaryHeaders(res: { headers: Record<string, string> }, fixture: FixtureCase): void {
  const P = fixture.expected.gradient.length;
  expect(res.headers['x-hessian-size']).toBe(String(P));
  expect(JSON.parse(res.headers['x-hessian-parameters'])).toEqual(fixture.expected.parameters);
}

describe('the seed 2x2 linear MSE case', () => {
  // Closed form, independent of the fixtures: L = 1/(B·U) Σ_b Σ_j (x_b·W_:j - y_bj)², so with W flattened
  // row-major, H[(i,j),(k,l)] = 2/(B·U) (XᵀX)_ik δ_jl = (2 / (B·U)) kron(XᵀX, I_U).
  const closedForm = (): number[][] => {
    const { x } = seed.request.data as { x: number[][] };
    const B = x.length;
    const U = 2;
    const xtx = [0, 1].map((i) => [0, 1].map((k) => x.reduce((s, row) => s + row[i] * row[k], 0)));
    const H: number[][] = [];
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < U; j++) H.push([0, 1].flatMap((k) => Array.from({ length: U }, (_, l) => (j === l ? (2 / (B * U)) * xtx[i][k] : 0))));
    return H;
  };

  it('JSON: a 4x4 matrix with one dense_1/kernel tensor, equal to the fixture and to the closed form', async () => {
    const res = await postHessian(seed.request);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.parameters).toEqual([{ name: 'dense_1/kernel', shape: [2, 2], offset: 0, size: 4 }]);
    expect(res.body.size).toBe(4);
    expectJsonMatchesFixture(res.body, seed);
    expect(relativeError(res.body.hessian.flat(), closedForm().flat())).toBeLessThan(TOLERANCE);
    expect(res.headers['x-request-id']).toBeTruthy();
  });

  it('octet-stream: exactly 64 bytes of little-endian float32, row-major', async () => {
    // Uncompressed (supertest asks for gzip by default), so Content-Length is the matrix's size.
    const res = await binary(postHessian(seed.request, 'application/octet-stream').set('accept-encoding', 'identity'));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/octet-stream/);
    expect(res.body.length).toBe(4 * 4 * 4);
    expect(res.headers['content-length']).toBe('64');
    expectBinaryHeaders(res, seed);
    expect(relativeError(decodeFloat32LE(res.body), closedForm().flat())).toBeLessThan(TOLERANCE);
  });

  it('.npy: version 1.0, <f4, shape (4, 4), header padded to 64 bytes', async () => {
    const res = await binary(postHessian(seed.request, 'application/x-npy').set('accept-encoding', 'identity'));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-npy/);
    expect(res.headers['content-disposition']).toMatch(/attachment; filename=".*\.npy"/);
    expect(Number(res.headers['content-length'])).toBe(res.body.length);
    expectBinaryHeaders(res, seed);
    const data = readNpy(res.body, 4);
    expect(relativeError(data, closedForm().flat())).toBeLessThan(TOLERANCE);
  });

  it('Accept negotiation: */*, application/* and a list pick a served form', async () => {
    const any = await postHessian(seed.request, '*/*');
    expect(any.status).toBe(200);
    expect(any.headers['content-type']).toMatch(/^application\/json/);
    const listed = await binary(postHessian(seed.request, 'text/html, application/x-npy;q=0.9, application/json;q=0.5'));
    expect(listed.status).toBe(200);
    expect(listed.headers['content-type']).toMatch(/^application\/x-npy/);
    expectMatrixMatchesFixture(readNpy(listed.body, 4), seed);
  });
});

describe.each(cases)('POST /v1/hessian $name', (fixture) => {
  const P = fixture.expected.gradient.length;

  it('JSON: parameters, loss, gradient and Hessian match the float64 reference', async () => {
    const res = await postHessian(fixture.request, 'application/json');
    expect(res.status).toBe(200);
    expectJsonMatchesFixture(res.body, fixture);
    // The JSON floats are the float32 values written exactly: symmetric as the reference is.
    expect(relativeError(res.body.hessian.flat(), fixture.expected.hessian.flat())).toBeLessThan(TOLERANCE);
  });

  it('octet-stream and .npy: the same matrix as float32', async () => {
    const raw = await binary(postHessian(fixture.request, 'application/octet-stream'));
    expect(raw.status).toBe(200);
    expect(raw.body.length).toBe(P * P * 4);
    expectBinaryHeaders(raw, fixture);
    expectMatrixMatchesFixture(decodeFloat32LE(raw.body), fixture);

    const npy = await binary(postHessian(fixture.request, 'application/x-npy'));
    expect(npy.status).toBe(200);
    expectBinaryHeaders(npy, fixture);
    const data = readNpy(npy.body, P);
    expectMatrixMatchesFixture(data, fixture);
    // Both binary forms carry the same bytes after the .npy header.
    expect(Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(raw.body)).toBe(true);
  });
});

describe('jobs of fixture cases: result in three forms and stream in two', () => {
  const picked = [
    'seed_2x2_linear_mse',
    'wrt_out_of_order_dense_1_bias_dense_3_kernel',
    'wrt_custom_layer_names',
    'depth_4_layers_mixed',
    'l2_some_layers',
    'larger_5_12_12_4_tanh_cce_logits',
  ].map(byName);

  it.each(picked)('$name', async (fixture) => {
    const P = fixture.expected.gradient.length;
    const created = await t.http().post('/v1/jobs').send(fixture.request);
    expect(created.status).toBe(202);
    const { id } = created.body;
    expect(id).toMatch(/^[A-Za-z0-9-]+$/);
    expect(created.headers.location).toBe(`/v1/jobs/${id}`);
    expect(created.body).toMatchObject({
      size: P,
      links: { self: `/v1/jobs/${id}`, result: `/v1/jobs/${id}/result`, stream: `/v1/jobs/${id}/stream` },
    });
    expect(['queued', 'running']).toContain(created.body.status);
    expect(Number.isNaN(Date.parse(created.body.createdAt))).toBe(false);

    // A stream opened right away follows the job to its end.
    const earlyStream = t.http().get(`/v1/jobs/${id}/stream`).buffer(true).parse(rawBody);
    const seen = await pollJob(t.http, id, (job) => job.status === 'succeeded');
    const done = seen[seen.length - 1];
    expect(done.progress).toBe(1);
    expect(done.startedAt).not.toBeNull();
    expect(done.finishedAt).not.toBeNull();
    expect(Date.parse(done.expiresAt)).toBeGreaterThan(Date.parse(done.finishedAt));

    const json = await t.http().get(`/v1/jobs/${id}/result`);
    expect(json.status).toBe(200);
    expectJsonMatchesFixture(json.body, fixture);

    const raw = await binary(t.http().get(`/v1/jobs/${id}/result`).set('accept', 'application/octet-stream'));
    expect(raw.status).toBe(200);
    expectBinaryHeaders(raw, fixture);
    const matrix = decodeFloat32LE(raw.body);
    expectMatrixMatchesFixture(matrix, fixture);

    const npy = await binary(t.http().get(`/v1/jobs/${id}/result`).set('accept', 'application/x-npy'));
    expect(npy.status).toBe(200);
    expectMatrixMatchesFixture(readNpy(npy.body, P), fixture);

    const early = await earlyStream;
    expect(early.status).toBe(200);
    expect(early.headers['content-type']).toMatch(/^application\/x-ndjson/);
    expect(early.headers['x-hessian-size']).toBe(String(P));
    expect(reassembleNdjson(early.body.toString('utf8'), P)).toEqual(matrix);

    const lateNdjson = await t.http().get(`/v1/jobs/${id}/stream`).set('accept', 'application/x-ndjson').buffer(true).parse(rawBody);
    expect(lateNdjson.status).toBe(200);
    expect(reassembleNdjson(lateNdjson.body.toString('utf8'), P)).toEqual(matrix);

    const lateBinary = await binary(t.http().get(`/v1/jobs/${id}/stream`).set('accept', 'application/octet-stream'));
    expect(lateBinary.status).toBe(200);
    expect(lateBinary.headers['content-type']).toMatch(/^application\/octet-stream/);
    expect(lateBinary.body.equals(raw.body)).toBe(true);

    // A finished job is deleted with its result; then it is gone.
    const deleted = await t.http().delete(`/v1/jobs/${id}`);
    expect(deleted.status).toBe(204);
    expect((await t.http().get(`/v1/jobs/${id}`)).status).toBe(404);
    expect((await t.http().get(`/v1/jobs/${id}/result`)).status).toBe(404);
  });
});

describe('concurrency', () => {
  it('20 concurrent synchronous requests of different cases, in mixed forms, are all correct', async () => {
    const chosen = cases.slice(0, 20);
    expect(new Set(chosen.map((c) => c.name)).size).toBe(20);
    const forms = ['application/json', 'application/octet-stream', 'application/x-npy'] as const;
    const responses = await Promise.all(
      chosen.map((fixture, i) => {
        const accept = forms[i % forms.length];
        const req = postHessian(fixture.request, accept);
        return accept === 'application/json' ? req : binary(req);
      }),
    );
    responses.forEach((res, i) => {
      const fixture = chosen[i];
      const P = fixture.expected.gradient.length;
      expect(res.status, fixture.name).toBe(200);
      const accept = forms[i % forms.length];
      if (accept === 'application/json') expectJsonMatchesFixture(res.body, fixture);
      else if (accept === 'application/octet-stream') expectMatrixMatchesFixture(decodeFloat32LE(res.body), fixture);
      else expectMatrixMatchesFixture(readNpy(res.body, P), fixture);
      if (accept !== 'application/json') {
        expectBinaryHeaders(res, fixture);
        expect(lossError(Number(res.headers['x-hessian-loss']), fixture.expected.loss)).toBeLessThan(TOLERANCE);
      }
    });
  });
});
