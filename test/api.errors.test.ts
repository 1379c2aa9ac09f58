/**
 * Every error the API gives: status, JSON body {error, message, details?} naming the field or limit,
 * never a 500 for bad input, and the service still answering correctly after each bad request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectJsonMatchesFixture,
  isFinishedStatus,
  LARGE,
  mlpRequest,
  pollJob,
  rawBody,
  removeDir,
  startApp,
  type TestApp,
  useApp,
} from './api-helpers.js';
import { fixtures } from './helpers.js';

const cases = fixtures();
const seed = cases.find((c) => c.name === 'seed_2x2_linear_mse')!;
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));

const t = useApp({ MAX_PARAMETERS: 100, MAX_BODY_BYTES: 64 * 1024 });

/** The shape every error body has. */
function expectErrorBody(res: { status: number; body: any; headers: Record<string, string> }, status: number, code?: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(typeof res.body.error).toBe('string');
  expect(typeof res.body.message).toBe('string');
  expect(res.body.message.length).toBeGreaterThan(0);
  if (code) expect(res.body.error).toBe(code);
  if (res.body.details !== undefined) {
    expect(Array.isArray(res.body.details)).toBe(true);
    for (const d of res.body.details) expect(d).toEqual({ path: expect.any(String), message: expect.any(String) });
  }
}

/** The seed case still computes correctly: a bad request before it did not disturb anything. */
async function expectStillWorks() {
  const res = await t.http().post('/v1/hessian').send(seed.request);
  expect(res.status).toBe(200);
  expectJsonMatchesFixture(res.body, seed);
}

/** A two-layer model whose second kernel has the wrong number of rows. */
function badKernelRows() {
  const body = clone(cases.find((c) => c.name === 'depth_1_layer_tanh')!.request);
  body.model.inputShape = [3];
  body.model.layers = [
    { type: 'dense', units: 64, activation: 'tanh' },
    { type: 'dense', units: 2, kernel: Array.from({ length: 32 }, () => [0.1, 0.2]) },
  ];
  body.data = { x: [[1, 2, 3]], y: [[0, 1]] };
  body.loss = 'meanSquaredError';
  return body;
}

describe('400: the request does not fit, and the message names the field', () => {
  const cases400: [string, () => unknown, string, RegExp][] = [
    ['a kernel with the wrong number of rows', badKernelRows, 'model.layers[1].kernel', /^model\.layers\[1\]\.kernel has 32 rows but the previous layer has 64 units$/],
    [
      'a first kernel that does not match the input',
      () => {
        const b = clone(seed.request);
        b.model.inputShape = [3];
        b.data.x = b.data.x.map((r: number[]) => [...r, 0]);
        return b;
      },
      'model.layers[0].kernel',
      /model\.layers\[0\]\.kernel has 2 rows but the input has 3 features/,
    ],
    [
      'a kernel row with the wrong number of entries',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].kernel[1] = [1, 2, 3];
        return b;
      },
      'model.layers[0].kernel[1]',
      /model\.layers\[0\]\.kernel\[1\] has 3 entries but the layer has 2 units/,
    ],
    [
      'a bias of the wrong length',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].useBias = true;
        b.model.layers[0].bias = [1, 2, 3];
        return b;
      },
      'model.layers[0].bias',
      /model\.layers\[0\]\.bias has 3 entries but the layer has 2 units/,
    ],
    [
      'a bias with useBias false',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].bias = [1, 2];
        return b;
      },
      'model.layers[0].bias',
      /useBias is false/,
    ],
    [
      'an unknown activation',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].activation = 'sparkle';
        return b;
      },
      'model.layers[0].activation',
      /model\.layers\[0\]\.activation/,
    ],
    [
      'an unknown layer type',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].type = 'lstm';
        return b;
      },
      'model.layers[0].type',
      /model\.layers\[0\]\.type/,
    ],
    [
      'zero units',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].units = 0;
        return b;
      },
      'model.layers[0].units',
      /model\.layers\[0\]\.units/,
    ],
    [
      'fractional units',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].units = 2.5;
        return b;
      },
      'model.layers[0].units',
      /model\.layers\[0\]\.units/,
    ],
    [
      'an unknown field in a layer',
      () => {
        const b = clone(seed.request);
        b.model.layers[0].kernal = [[1]];
        return b;
      },
      'model.layers[0]',
      /kernal/,
    ],
    [
      'an unknown loss',
      () => ({ ...clone(seed.request), loss: 'hinge' }),
      'loss',
      /loss/,
    ],
    [
      'fromLogits on a loss that takes none',
      () => ({ ...clone(seed.request), loss: { type: 'meanSquaredError', fromLogits: true } }),
      'loss.fromLogits',
      /loss\.fromLogits does not apply to meanSquaredError/,
    ],
    [
      'a negative huber delta',
      () => ({ ...clone(seed.request), loss: { type: 'huber', delta: -1 } }),
      'loss.delta',
      /loss\.delta/,
    ],
    [
      'no data',
      () => {
        const b = clone(seed.request);
        delete b.data;
        return b;
      },
      'data',
      /data/,
    ],
    [
      'a data row with the wrong number of features',
      () => {
        const b = clone(seed.request);
        b.data.x[1] = [1, 2, 3];
        return b;
      },
      'data.x[1]',
      /data\.x\[1\] has 3 features but model\.inputShape is \[2\]/,
    ],
    [
      'a string where a number belongs',
      () => {
        const b = clone(seed.request);
        b.data.x[0][1] = 'two';
        return b;
      },
      'data.x[0][1]',
      /data\.x\[0\]\[1\]/,
    ],
    [
      'fewer targets than inputs',
      () => {
        const b = clone(seed.request);
        b.data.y.pop();
        return b;
      },
      'data.y',
      /data\.y has 2 rows but data\.x has 3/,
    ],
    [
      'a target of the wrong width',
      () => {
        const b = clone(seed.request);
        b.data.y[2] = [1, 1, 1];
        return b;
      },
      'data.y[2]',
      /data\.y\[2\] must have 2 entries/,
    ],
    [
      'a class label out of range for sparseCategoricalCrossentropy',
      () => {
        const b = clone(cases.find((c) => c.name === 'loss_sparse_cce_logits')!.request);
        b.data.y[3] = 3;
        return b;
      },
      'data.y[3]',
      /data\.y\[3\] must be an integer class label in \[0, 2\]/,
    ],
    [
      'an unknown wrt tensor',
      () => ({ ...clone(seed.request), wrt: ['dense_1/bias'] }),
      'wrt[0]',
      /wrt\[0\] 'dense_1\/bias' is not a parameter tensor; the model has dense_1\/kernel/,
    ],
    [
      'a wrt tensor listed twice',
      () => ({ ...clone(seed.request), wrt: ['dense_1/kernel', 'dense_1/kernel'] }),
      'wrt[1]',
      /listed twice/,
    ],
    [
      'two layers with the same name',
      () => {
        const b = clone(cases.find((c) => c.name === 'custom_layer_names_no_wrt')!.request);
        b.model.layers[1].name = b.model.layers[0].name ?? 'dense_1';
        b.model.layers[0].name = b.model.layers[1].name;
        return b;
      },
      'model.layers[1].name',
      /is used by an earlier layer/,
    ],
    [
      'an unknown top-level field',
      () => ({ ...clone(seed.request), optimizer: 'adam' }),
      '',
      /optimizer/,
    ],
  ];

  it.each(cases400)('%s', async (_name, make, path, message) => {
    for (const url of ['/v1/hessian', '/v1/jobs']) {
      const res = await t.http().post(url).send(make() as object);
      expectErrorBody(res, 400, 'invalid_request');
      expect(res.body.message).toMatch(message);
      expect(res.body.details?.length).toBeGreaterThan(0);
      if (path) expect(res.body.details.map((d: any) => d.path)).toContain(path);
    }
  });

  const noLayers = () => ({ ...clone(seed.request), model: { inputShape: [2], layers: [] } });

  it('an empty layer list is a 400, not a 500', async () => {
    for (const url of ['/v1/hessian', '/v1/jobs']) {
      const res = await t.http().post(url).send(noLayers());
      expectErrorBody(res, 400, 'invalid_request');
    }
    await expectStillWorks();
  });

  // KNOWN BUG (src/schemas/model.ts, checkTargets): zod still runs the cross-field checks after
  // `layers.min(1)` fails, and checkTargets reads layers[-1].units of an empty list and throws; the
  // app turns the throw into a 400 but cannot say which field. Flip to `it` once the schema returns
  // early on an empty layer list.
  it('an empty layer list names model.layers', async () => {
    const res = await t.http().post('/v1/hessian').send(noLayers());
    expect(res.status).toBe(400);
    expect(res.body.details.map((d: any) => d.path)).toContain('model.layers');
  });

  it('a number too large for a double (1e400 parses as Infinity) is rejected by field', async () => {
    const text = JSON.stringify(seed.request).replace('"x":[[1,2]', '"x":[[1e400,2]');
    expect(text).toContain('1e400');
    const res = await t.http().post('/v1/hessian').set('content-type', 'application/json').send(text);
    expectErrorBody(res, 400, 'invalid_request');
    expect(res.body.details.map((d: any) => d.path)).toContain('data.x[0][0]');
  });

  it('malformed JSON, an empty body, a body that is not an object, and a non-JSON content type', async () => {
    const malformed = await t.http().post('/v1/hessian').set('content-type', 'application/json').send('{"model": {"inputShape": [2],');
    expectErrorBody(malformed, 400, 'invalid_json');
    expect(malformed.body.message).toMatch(/not valid JSON/);

    const empty = await t.http().post('/v1/jobs').set('content-type', 'application/json').send('');
    expectErrorBody(empty, 400);
    expect(empty.body.message).toMatch(/empty/);

    for (const body of ['[]', '"model"', 'null', '42']) {
      const res = await t.http().post('/v1/hessian').set('content-type', 'application/json').send(body);
      expect(res.status, body).toBe(400);
      expectErrorBody(res, 400);
    }

    // text/plain is read as a string (fastify's own parser), which is not an object.
    const text = await t.http().post('/v1/hessian').set('content-type', 'text/plain').send(JSON.stringify(seed.request));
    expectErrorBody(text, 400, 'invalid_request');
    expect(text.body.message).toMatch(/the request body must be an object/);
    const xml = await t.http().post('/v1/hessian').set('content-type', 'application/xml').send('<model/>');
    expectErrorBody(xml, 415, 'unsupported_media_type');
    expect(xml.body.message).toMatch(/application\/json/);
    await expectStillWorks();
  });

  it('an invalid job id is 400 and names the parameter', async () => {
    const res = await t.http().get('/v1/jobs/not*a*uuid');
    expectErrorBody(res, 400);
    expect(res.body.message).toMatch(/id/);
  });
});

describe('413: over the limits', () => {
  it('a body over MAX_BODY_BYTES', async () => {
    const body = clone(seed.request);
    body.data.x = Array.from({ length: 5000 }, () => [1.25, -2.5]);
    body.data.y = Array.from({ length: 5000 }, () => [0.5, 0.5]);
    const text = JSON.stringify(body);
    expect(text.length).toBeGreaterThan(64 * 1024);
    for (const url of ['/v1/hessian', '/v1/jobs']) {
      const res = await t.http().post(url).set('content-type', 'application/json').send(text);
      expectErrorBody(res, 413, 'payload_too_large');
      expect(res.body.message).toMatch(/MAX_BODY_BYTES/);
    }
    await expectStillWorks();
  });

  it('P over MAX_PARAMETERS states the P asked for, the limit and the bytes', async () => {
    // 10 -> 20 -> 3 with biases: P = 10*20 + 20 + 20*3 + 3 = 283 > 100.
    const body = mlpRequest([10, 20, 3], 4);
    const P = 283;
    for (const url of ['/v1/hessian', '/v1/jobs']) {
      const res = await t.http().post(url).send(body);
      expectErrorBody(res, 413, 'too_many_parameters');
      expect(res.body.message).toContain(`P = ${P}`);
      expect(res.body.message).toContain('MAX_PARAMETERS is 100');
      expect(res.body.message).toContain(`${P * P * 4} bytes`);
    }
    // wrt decides P: the 63 parameters of the last layer are under the limit.
    const restricted = await t.http().post('/v1/hessian').send({ ...body, wrt: ['dense_2/kernel', 'dense_2/bias'] });
    expect(restricted.status).toBe(200);
    expect(restricted.body.size).toBe(63);
    expect(restricted.body.hessian).toHaveLength(63);
  });

  it('wrt cannot smuggle a huge model past the limits: 413 model_too_large names the size', async () => {
    // A seeded 3,000 x 10,000 layer (3 * 10^7 weights) of which wrt keeps only the 10,000 biases.
    const body = {
      model: { inputShape: [3000], layers: [{ type: 'dense', units: 10_000 }] },
      loss: 'meanSquaredError',
      data: { x: [new Array(3000).fill(0)], y: [new Array(10_000).fill(0)] },
      wrt: ['dense_1/bias'],
    };
    const res = await t.http().post('/v1/jobs').send(body);
    expectErrorBody(res, 413, 'model_too_large');
    expect(res.body.message).toContain(`${3000 * 10_000 + 10_000} parameters`);
    expect(res.body.message).toContain('MAX_MODEL_PARAMETERS is 10000000');
    await expectStillWorks();
  });
});

describe('406: an Accept header naming no served form', () => {
  it('POST /v1/hessian, GET result and GET stream', async () => {
    const sync = await t.http().post('/v1/hessian').set('accept', 'text/html').send(seed.request);
    expectErrorBody(sync, 406, 'not_acceptable');
    expect(sync.body.message).toMatch(/application\/json/);
    expect(sync.body.message).toMatch(/application\/x-npy/);

    const created = await t.http().post('/v1/jobs').send(seed.request);
    expect(created.status).toBe(202);
    await pollJob(t.http, created.body.id, (job) => job.status === 'succeeded');
    const result = await t.http().get(`/v1/jobs/${created.body.id}/result`).set('accept', 'image/gif');
    expectErrorBody(result, 406, 'not_acceptable');
    const stream = await t.http().get(`/v1/jobs/${created.body.id}/stream`).set('accept', 'application/x-npy');
    expectErrorBody(stream, 406, 'not_acceptable');
    expect(stream.body.message).toMatch(/application\/x-ndjson/);
  });
});

describe('404: unknown jobs and routes', () => {
  it('GET, result, stream and DELETE of a job that never existed', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    for (const req of [
      t.http().get(`/v1/jobs/${id}`),
      t.http().get(`/v1/jobs/${id}/result`),
      t.http().get(`/v1/jobs/${id}/stream`),
      t.http().delete(`/v1/jobs/${id}`),
    ]) {
      const res = await req;
      expectErrorBody(res, 404, 'not_found');
      expect(res.body.message).toContain(id);
    }
    const route = await t.http().get('/v1/nothing-here');
    expect(route.status).toBe(404);
  });
});

describe('422: numerically impossible requests', () => {
  /** A linear 1 -> 1 layer whose output is exactly `output`, under binaryCrossentropy on probabilities. */
  const bceAt = (output: number, target: number) => ({
    model: { inputShape: [1], layers: [{ type: 'dense', units: 1, activation: 'linear', useBias: false, kernel: [[output]] }] },
    loss: 'binaryCrossentropy',
    data: { x: [[1]], y: [[target]] },
  });
  it.each([
    ['output exactly 1, target 0', bceAt(1, 0)],
    ['output exactly 0, target 1', bceAt(0, 1)],
  ])('POST /v1/hessian: %s', async (_name, body) => {
    const res = await t.http().post('/v1/hessian').send(body);
    expectErrorBody(res, 422, 'numerical_error');
    expect(res.body.message).toMatch(/finite|Infinity|NaN/);
  });

  it('as a job: failed with kind numerical; result and stream answer 409; it can be deleted', async () => {
    const created = await t.http().post('/v1/jobs').send(bceAt(1, 0));
    expect(created.status).toBe(202);
    const { id } = created.body;
    const seen = await pollJob(t.http, id, (job) => isFinishedStatus(job.status));
    const job = seen[seen.length - 1];
    expect(job.status).toBe('failed');
    expect(job.error.kind).toBe('numerical');
    const result = await t.http().get(`/v1/jobs/${id}/result`);
    expectErrorBody(result, 409, 'job_failed');
    expect(result.body.message).toContain(id);
    const stream = await t.http().get(`/v1/jobs/${id}/stream`);
    expectErrorBody(stream, 409, 'job_failed');
    expect((await t.http().delete(`/v1/jobs/${id}`)).status).toBe(204);
    await expectStillWorks();
  });

  it('a sigmoid output saturated to exactly 1 and 0 is not one: its logits go to the loss (fused), loss 200', async () => {
    const res = await t.http().post('/v1/hessian').send({
      model: { inputShape: [1], layers: [{ type: 'dense', units: 1, activation: 'sigmoid', kernel: [[200]], bias: [0] }] },
      loss: { type: 'binaryCrossentropy', fromLogits: false },
      data: { x: [[1], [-1]], y: [[0], [1]] },
    });
    expect(res.status).toBe(200);
    // Both examples confidently wrong at logit ±200: softplus(200) = 200 each; dL/dz = ±1, so
    // dL/dw = mean(1·1, -1·-1) = 1, dL/db = mean(1, -1) = 0; the Hessian is sigmoid'(200) ~ e^-200, 0 in float32.
    expect(res.body.loss).toBeCloseTo(200, 3);
    expect(res.body.gradient).toEqual([1, 0]);
    expect(res.body.hessian.flat().every((v: number) => Math.abs(v) < 1e-30)).toBe(true);
  });

  it('the same model with fromLogits is fine (the logit 1 is finite)', async () => {
    const res = await t.http().post('/v1/hessian').send({ ...bceAt(1, 0), loss: { type: 'binaryCrossentropy', fromLogits: true } });
    expect(res.status).toBe(200);
    // L(w) = softplus(w) at x = 1, y = 0: L'' = σ(w)(1 - σ(w)) at w = 1.
    const s = 1 / (1 + Math.exp(-1));
    expect(Math.abs(res.body.hessian[0][0] - s * (1 - s))).toBeLessThan(1e-6);
    expect(Math.abs(res.body.gradient[0] - s)).toBeLessThan(1e-6);
    expect(Math.abs(res.body.loss - Math.log1p(Math.exp(1)))).toBeLessThan(1e-6);
  });
});

describe('bad input never gives a 500', () => {
  /** Every path of a JSON value, as key lists. */
  function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    if (Array.isArray(value)) return [prefix, ...value.flatMap((v, i) => paths(v, [...prefix, i]))];
    if (value && typeof value === 'object') return [prefix, ...Object.entries(value).flatMap(([k, v]) => paths(v, [...prefix, k]))];
    return [prefix];
  }
  const replaced = (root: any, path: (string | number)[], value: unknown) => {
    const copy = clone(root);
    if (!path.length) return value;
    let at = copy;
    for (const key of path.slice(0, -1)) at = at[key];
    if (value === undefined) {
      if (Array.isArray(at)) at.splice(path[path.length - 1] as number, 1);
      else delete at[path[path.length - 1]];
    } else at[path[path.length - 1]] = value;
    return copy;
  };

  it('every field of two requests replaced by null, a string, a negative, a huge number, [], {} or removed', async () => {
    const bases = [seed.request, cases.find((c) => c.name === 'wrt_custom_layer_names')!.request];
    const values: unknown[] = [null, 'x', -1, 1e300, 0, [], {}, undefined, true];
    const statuses = new Map<number, number>();
    let sent = 0;
    for (const base of bases) {
      const all = paths(base);
      // Every path for the seed; every 7th for the larger request, to keep the run short.
      const chosen = base === seed.request ? all : all.filter((_, i) => i % 7 === 0);
      for (const path of chosen) {
        const bodies = values.map((v) => replaced(base, path, v));
        const responses = await Promise.all(
          bodies.map((body) =>
            body === undefined
              ? t.http().post('/v1/hessian').set('content-type', 'application/json').send('')
              : t.http().post('/v1/hessian').set('content-type', 'application/json').send(JSON.stringify(body)),
          ),
        );
        for (const [i, res] of responses.entries()) {
          sent++;
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const context = `${JSON.stringify(path)} := ${JSON.stringify(values[i])}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`;
          expect([200, 400, 413, 422], context).toContain(res.status);
          if (res.status !== 200) expectErrorBody(res, res.status);
        }
      }
    }
    expect(sent).toBeGreaterThan(200);
    expect(statuses.get(400)).toBeGreaterThan(100);
    await expectStillWorks();
  });
});

describe('429: the job queue is full', () => {
  let q: TestApp;
  beforeAll(async () => {
    // No small lane: every synchronous request goes through the job queue here.
    q = await startApp({ MAX_QUEUED_JOBS: 1, SMALL_JOB_FLOPS: 0 });
  });
  afterAll(async () => {
    await q?.close();
    if (q) await removeDir(q.dir);
  });

  it('beyond MAX_QUEUED_JOBS waiting jobs: 429 with Retry-After, for jobs and synchronous requests; 409 for an unfinished result', async () => {
    const running = await q.http().post('/v1/jobs').send(mlpRequest(LARGE.sizes, LARGE.batch));
    expect(running.status).toBe(202);
    const waiting = await q.http().post('/v1/jobs').send(seed.request);
    expect(waiting.status).toBe(202);
    expect(waiting.body.status).toBe('queued');

    for (const url of ['/v1/jobs', '/v1/hessian']) {
      const full = await q.http().post(url).send(seed.request);
      expectErrorBody(full, 429, 'queue_full');
      expect(Number(full.headers['retry-after'])).toBeGreaterThan(0);
      expect(full.body.message).toMatch(/queue is full \(1 jobs? waiting\)/);
    }

    const early = await q.http().get(`/v1/jobs/${running.body.id}/result`);
    expectErrorBody(early, 409, 'not_finished');
    expect(early.body.message).toMatch(/running|queued/);
    const queuedResult = await q.http().get(`/v1/jobs/${waiting.body.id}/result`);
    expectErrorBody(queuedResult, 409, 'not_finished');
    expect(queuedResult.body.message).toMatch(/queued/);

    // Cancelling the waiting job frees its place; it never started.
    const cancelled = await q.http().delete(`/v1/jobs/${waiting.body.id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.startedAt).toBeNull();
    const next = await q.http().post('/v1/jobs').send(seed.request);
    expect(next.status).toBe(202);

    expect((await q.http().delete(`/v1/jobs/${running.body.id}`)).body.status).toBe('cancelled');
    const seen = await pollJob(q.http, next.body.id, (job) => isFinishedStatus(job.status));
    expect(seen[seen.length - 1].status).toBe('succeeded');
    const result = await q.http().get(`/v1/jobs/${next.body.id}/result`);
    expectJsonMatchesFixture(result.body, seed);
    // A binary request is not fooled either.
    const binary = await q.http().get(`/v1/jobs/${next.body.id}/result`).set('accept', 'application/octet-stream').buffer(true).parse(rawBody);
    expect(binary.body.length).toBe(64);
  });
});
