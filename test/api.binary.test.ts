/**
 * Binary tensors for data ({"dtype","shape","data": base64 little-endian}): the same answers as nested
 * arrays, checked against the float64 PyTorch fixtures; bad dtype, shape, length, encoding or values
 * are 400s that name the field, what was found and what is accepted. And MAX_QUEUED_BYTES.
 */
import { describe, expect, it } from 'vitest';
import { encodeTensor } from '../src/schemas/tensor.js';
import { expectJsonMatchesFixture, LARGE, mlpRequest, pollJob, rawBody, useApp } from './api-helpers.js';
import { fixtures } from './helpers.js';

const cases = fixtures();
const larger = cases.find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
const sparse = cases.find((c) => c.name === 'loss_sparse_cce_logits')!;
const seed = cases.find((c) => c.name === 'seed_2x2_linear_mse')!;

/** The request with data.x (and data.y) sent as binary tensors. */
function asBinary(request: any, labels = false) {
  const { x, y } = request.data;
  const rows = x.length;
  const binaryY = labels
    ? encodeTensor(y.map((t: number | number[]) => (Array.isArray(t) ? t[0] : t)), [rows], 'int32')
    : encodeTensor(y.flat(), [rows, y[0].length]);
  return { ...request, data: { x: encodeTensor(x.flat(), [rows, x[0].length]), y: binaryY } };
}

const t = useApp({ MAX_QUEUED_BYTES: 64 * 1024, SHUTDOWN_GRACE_SECONDS: 0 });
const post = (body: unknown, accept = 'application/json') => t.http().post('/v1/hessian').set('accept', accept).send(body as object);

describe('binary tensors', () => {
  it('dense float32 targets and int32 labels give the fixtures answers, and the same bytes as nested arrays', async () => {
    for (const [fixture, labels] of [
      [larger, false],
      [sparse, true],
    ] as const) {
      const binary = asBinary(fixture.request, labels);
      const res = await post(binary);
      expect(res.status, fixture.name).toBe(200);
      expectJsonMatchesFixture(res.body, fixture);
      const [nested, fromBinary] = await Promise.all(
        [fixture.request, binary].map((body) => post(body, 'application/octet-stream').buffer(true).parse(rawBody)),
      );
      expect(fromBinary.body.equals(nested.body)).toBe(true);
    }
  });

  const x = seed.request.data.x;
  const cases400: [string, (data: any) => any, RegExp][] = [
    ['dtype not served', (d) => ({ ...d, x: { ...encodeTensor(x.flat(), [3, 2]), dtype: 'float64' } }), /data\.x\.dtype/],
    ['int32 features', (d) => ({ ...d, x: encodeTensor(x.flat(), [3, 2], 'int32') }), /data\.x is int32 but the model input is float32/],
    ['wrong feature count', (d) => ({ ...d, x: encodeTensor(x.flat(), [2, 3]) }), /data\.x is float32 \[2, 3\]; it must be float32 \[batch, 2\]/],
    ['3-D shape', (d) => ({ ...d, x: encodeTensor(x.flat(), [3, 1, 2]) }), /data\.x is float32 \[3, 1, 2\]; it must be float32 \[batch, 2\]/],
    ['too few bytes', (d) => ({ ...d, x: { ...encodeTensor(x.flat(), [3, 2]), shape: [4, 2] } }), /data\.x\.data holds 24 bytes but shape \[4, 2\] of float32 needs 8 x 4 = 32 bytes/],
    ['not base64', (d) => ({ ...d, x: { dtype: 'float32', shape: [1, 2], data: 'AAAA*AAAAAA=' } }), /data\.x\.data must be base64/],
    ['a NaN', (d) => ({ ...d, x: encodeTensor([1, NaN, 3, -1, 0.5, 0.5], [3, 2]) }), /data\.x\.data value 1 is NaN; values must be finite/],
    ['rows differ', (d) => ({ ...d, y: encodeTensor([1, 0, 0, 1], [2, 2]) }), /data\.y has 2 rows but data\.x has 3/],
    ['targets of the wrong width', (d) => ({ ...d, y: encodeTensor([1, 0, 0], [3, 1]) }), /data\.y is float32 \[3, 1\]; meanSquaredError takes float32 \[batch, 2\] targets/],
    ['a string', (d) => ({ ...d, x: 'AAAA' }), /data\.x is .{0,2}"AAAA.{0,2}"; expected an array/],
    ['an unknown key', (d) => ({ ...d, x: { ...encodeTensor(x.flat(), [3, 2]), order: 'C' } }), /data\.x.*order/],
  ];
  for (const [name, mutate, message] of cases400) {
    it(`400 for ${name}`, async () => {
      const res = await post({ ...seed.request, data: mutate(seed.request.data) });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
      expect(JSON.stringify(res.body)).toMatch(message);
    });
  }

  it('400 for int32 labels out of range and for float32 targets where labels are expected', async () => {
    const rows = sparse.request.data.x.length;
    const units = sparse.request.model.layers.at(-1).units;
    const outOfRange = asBinary(sparse.request, true);
    outOfRange.data.y = encodeTensor(Array.from({ length: rows }, (_, i) => (i === 1 ? units : 0)), [rows], 'int32');
    let res = await post(outOfRange);
    expect(res.status).toBe(400);
    expect(res.body.message).toContain(`data.y[1] is ${units}; it must be an integer class label in [0, ${units - 1}]`);
    const floats = asBinary(sparse.request, true);
    floats.data.y = encodeTensor(new Array(rows).fill(0), [rows]);
    res = await post(floats);
    expect(res.status).toBe(400);
    expect(res.body.message).toContain(`data.y is float32 [${rows}]; sparseCategoricalCrossentropy takes int32 [batch] class labels`);
  });
});

describe('MAX_QUEUED_BYTES', () => {
  it('a request whose tensors would take the queued bytes over the limit gets 429 saying so; others still queue', async () => {
    const running = await t.http().post('/v1/jobs').send(mlpRequest(LARGE.sizes, LARGE.batch));
    expect(running.status).toBe(202);
    await pollJob(t.http, running.body.id, (job) => job.status === 'running');
    // 300 rows of 20 features and 10 targets: 36000 bytes as float32; two of them pass 64 KiB.
    const body = mlpRequest([20, 4, 10], 300);
    const first = await t.http().post('/v1/jobs').send(body);
    expect(first.status).toBe(202);
    const second = await t.http().post('/v1/jobs').send(body);
    expect(second.status).toBe(429);
    expect(second.body.error).toBe('queue_full');
    expect(second.body.message).toMatch(/the queued requests hold 36\d\d\d bytes; this one needs 36\d\d\d more and MAX_QUEUED_BYTES is 65536/);
    const third = await t.http().post('/v1/jobs').send(seed.request);
    expect(third.status).toBe(202); // small enough
    for (const job of [third, first, running]) await t.http().delete(`/v1/jobs/${job.body.id}`);
  });

  it("a curvature job's hvp directions count too", async () => {
    const running = await t.http().post('/v1/jobs').send(mlpRequest(LARGE.sizes, LARGE.batch));
    expect(running.status).toBe(202);
    await pollJob(t.http, running.body.id, (job) => job.status === 'running');
    const small = mlpRequest([2, 3, 2], 4); // P = 17; its tensors take a few hundred bytes
    const hvp = (count: number) => ({ ...small, quantity: 'hvp', vectors: Array.from({ length: count }, (_, d) => Array.from({ length: 17 }, (_, i) => (i === d % 17 ? 1 : 0))) });
    // 600 directions of 17 numbers, 8 bytes each as JS numbers: 81600 bytes, over 64 KiB alone.
    const over = await t.http().post('/v1/jobs').send(hvp(600));
    expect(over.status).toBe(429);
    expect(over.body.error).toBe('queue_full');
    expect(over.body.message).toMatch(/the queued requests hold 0 bytes; this one needs 816\d\d more and MAX_QUEUED_BYTES is 65536/);
    const fits = await t.http().post('/v1/jobs').send(hvp(50));
    expect(fits.status).toBe(202);
    await t.http().delete(`/v1/jobs/${fits.body.id}`);
    await t.http().delete(`/v1/jobs/${running.body.id}`);
  });
});
