/**
 * Models that are not dense stacks (issue #9) end to end over HTTP: every case of test/fixtures/graphs.json
 * (convolutions, pooling, batch normalization, embeddings, functional graphs; float64 PyTorch references
 * made by test/fixtures/generate_graphs.py) through POST /v1/hessian as JSON and .npy and as a job
 * (result and stream), computed by the graph engine (meta.method "graph"); admission of graph models by
 * their cost estimate; real Keras models (to_json + get_weights, test/fixtures/keras) without a loss, which
 * is read from their compile_config; curvature quantities of graph models (Hessian, GGN, Fisher) against references.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkNpyHeader, decodeFloat32LE, expectJsonMatchesFixture, expectMatrixMatchesFixture, pollJob, rawBody, reassembleNdjson, startApp, useApp, type TestApp } from './api-helpers.js';
import { encodeTensor } from '../src/schemas/tensor.js';
import { fixtures, kerasFixtures, relativeError, type FixtureCase } from './helpers.js';

const LIMITS = { MAX_PARAMETERS: 5000, MAX_MODEL_PARAMETERS: 50_000 };
const t = useApp(LIMITS);
const cases = fixtures('graphs.json');
const named = (name: string) => cases.find((c) => c.name === name)!;

describe('POST /v1/hessian with graph models', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s: JSON matches the float64 reference, computed by the graph engine', async (_, c) => {
    const res = await t.http().post('/v1/hessian').send(c.request);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expectJsonMatchesFixture(res.body, c);
    expect(res.body.meta.method).toBe('graph');
  });

  it.each(['lenet_valid_conv_maxpool_sparse_cce_logits_binary_x', 'functional_conv_residual_block_batchnorm_relu', 'embedding_flatten_dense_sparse_logits'])(
    '%s: .npy holds the same matrix, parameters in the header',
    async (name) => {
      const c = named(name);
      const P = c.expected.gradient.length;
      const res = await t.http().post('/v1/hessian').set('accept', 'application/x-npy').send(c.request).buffer(true).parse(rawBody);
      expect(res.status).toBe(200);
      const offset = checkNpyHeader(res.body, P, P);
      expectMatrixMatchesFixture(decodeFloat32LE(res.body.subarray(offset)), c);
      const header = JSON.parse(res.headers['x-hessian-parameters']);
      expect(header).toEqual(c.expected.parameters);
    },
  );

  it('a dense stack still takes a dense path', async () => {
    const dense = fixtures().find((c) => c.name === 'depth_3_layers_tanh_sigmoid_gelu')!;
    const res = await t.http().post('/v1/hessian').send(dense.request);
    expect(res.status).toBe(200);
    expectJsonMatchesFixture(res.body, dense);
    expect(['structured', 'rOperator']).toContain(res.body.meta.method);
  });
});

describe('Keras models (to_json + get_weights) without a loss: the compiled loss is used', () => {
  it.each(kerasFixtures().map((k) => [k.name, k] as const))('%s', async (_, k) => {
    const body = { model: { ...k.to_json, weights: k.weights }, data: k.data };
    const res = await t.http().post('/v1/hessian').send(body);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expectJsonMatchesFixture(res.body, { name: k.name, request: body, expected: k.expected });
    expect(res.body.meta.method).toBe('graph');
  });
});

/** Queues a job, waits for it to succeed, and checks its result (JSON) and its NDJSON stream against the reference. */
async function expectJobMatches(app: TestApp, c: FixtureCase) {
  const created = await app.http().post('/v1/jobs').send(c.request);
  expect(created.status, JSON.stringify(created.body).slice(0, 300)).toBe(202);
  const seen = await pollJob(app.http, created.body.id, (job) => ['succeeded', 'failed', 'cancelled'].includes(job.status));
  expect(seen[seen.length - 1]).toMatchObject({ status: 'succeeded', progress: 1 });
  const result = await app.http().get(`/v1/jobs/${created.body.id}/result`);
  expect(result.status).toBe(200);
  expectJsonMatchesFixture(result.body, c);
  expect(result.body.meta.method).toBe('graph');
  const stream = await app.http().get(`/v1/jobs/${created.body.id}/stream`).buffer(true).parse(rawBody);
  expect(stream.status).toBe(200);
  expectMatrixMatchesFixture(reassembleNdjson(stream.body.toString('utf8'), c.expected.gradient.length), c);
}

describe('graph models as jobs: row blocks over the workers, lower blocks filled by symmetry', () => {
  it.each([
    'lenet_valid_conv_maxpool_sparse_cce_logits_binary_x',
    'wrt_lenet_cross_layer_pair_reversed',
    'functional_conv_add_three_inputs_concatenate_axis3',
    'batchnorm_dense_trainable',
    'embedding_dense_rank3_flatten_bce_logits_binary_ids',
  ])('%s: result and stream match the reference', async (name) => {
    await expectJobMatches(t, named(name));
  });
});

/** A small CNN: conv2d 3x3 same (4 filters) on [side, side, 1], flatten, dense `units`; weights from the seed, x binary. */
function cnn(side: number, units: number, batch: number, wrt?: string[]) {
  return {
    model: {
      inputShape: [side, side, 1],
      layers: [
        { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' },
        { type: 'flatten' },
        { type: 'dense', units },
      ],
    },
    loss: 'sparseCategoricalCrossentropy',
    data: { x: encodeTensor(Array.from({ length: batch * side * side }, (_, i) => Math.sin(i)), [batch, side, side, 1]), y: Array.from({ length: batch }, (_, b) => b % units) },
    ...(wrt ? { wrt } : {}),
  };
}

describe('admission of graph models, before anything is allocated', () => {
  it('413 too_many_parameters gives P (conv 40 + dense 16 x 16 x 4 x 10 + 10 = 10290), the limit and the bytes', async () => {
    const res = await t.http().post('/v1/hessian').send(cnn(16, 10, 2));
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('too_many_parameters');
    expect(res.body.message).toMatch(/P = 10290\b.*MAX_PARAMETERS is 5000/);
  });

  it('413 model_too_large: wrt cannot take a small part of a model over MAX_MODEL_PARAMETERS', async () => {
    const res = await t.http().post('/v1/jobs').send(cnn(32, 20, 2, ['conv2d_1/kernel']));
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('model_too_large');
    expect(res.body.message).toBe('the model has 81980 parameters; the limit MAX_MODEL_PARAMETERS is 50000');
  });

  it('413 over_compute_budget and over_memory_budget give the estimate and the limit', async () => {
    const tight = await startApp({ MAX_JOB_FLOPS: 1e5 });
    try {
      const res = await tight.http().post('/v1/hessian').send(named('lenet_valid_conv_maxpool_sparse_cce_logits_binary_x').request);
      expect(res.status).toBe(413);
      expect(res.body.error).toBe('over_compute_budget');
      expect(res.body.message).toMatch(/about \d\.\d\de\+\d+ floating-point operations \(P = 345, batch 4\); the limit MAX_JOB_FLOPS is 1\.00e\+5/);
    } finally {
      await tight.close();
    }
    const small = await startApp({ MAX_WORKER_MEMORY_MB: 64 });
    try {
      const res = await small.http().post('/v1/jobs').send(cnn(64, 10, 256, ['conv2d_1/kernel']));
      expect(res.status).toBe(413);
      expect(res.body.error).toBe('over_memory_budget');
      expect(res.body.message).toMatch(/about \d+\.\d\d GiB \((\d+) MiB\) of working memory for this model and batch \(batch 256\).*the limit MAX_WORKER_MEMORY_MB is 64 MiB/);
    } finally {
      await small.close();
    }
  });

  it("a graph model's exact diagonal is admitted as P products (H), B x logits (GGN) or B (Fisher); a trace estimate as its samples", async () => {
    const body = { ...cnn(16, 10, 2), loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true } }; // P = 10290, batch 2
    const probe = await startApp({ MAX_JOB_FLOPS: 1, MAX_PARAMETERS: 20_000 });
    let hessianFlops: number;
    try {
      const res = await probe.http().post('/v1/hessian').send(body);
      expect(res.status).toBe(413);
      hessianFlops = Number(/about (\S+) floating-point operations/.exec(res.body.message)![1]);
    } finally {
      await probe.close();
    }
    // Between 20 products and P of them: P unit directions are refused; 2 examples x 10 logits, 2 examples or 5 samples are not.
    const tight = await startApp({ MAX_JOB_FLOPS: hessianFlops / 10 });
    try {
      const send = (options: object) => tight.http().post('/v1/curvature').send({ ...body, ...options });
      const hessian = await send({ quantity: 'diagonal', matrix: 'hessian' });
      expect(hessian.status).toBe(413);
      expect(hessian.body.message).toMatch(/diagonal would take about 10290 curvature products/);
      expect((await send({ quantity: 'trace', method: 'exact' })).status).toBe(413);
      for (const matrix of ['ggn', 'fisher']) {
        const res = await send({ quantity: 'diagonal', matrix });
        expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
        expect(res.body.diagonal).toHaveLength(10290);
      }
      expect((await send({ quantity: 'trace', method: 'hutchinson', samples: 5 })).status).toBe(200);
    } finally {
      await tight.close();
    }
  });

  it('a graph the engine cannot build is a 400 naming the layer, never a 500', async () => {
    const body = cnn(6, 3, 2);
    (body.model.layers[2] as Record<string, unknown>).kernel = [[1, 2]];
    const res = await t.http().post('/v1/hessian').send(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.message).toMatch(/dense_3|model\.layers\[2\]/);
  });
});

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations, in float64 (test code, sharing nothing with src/). */
function symmetricEigenvalues(matrix: number[][]): number[] {
  const n = matrix.length;
  const a = matrix.map((row) => [...row]);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p][q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const tangent = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(tangent * tangent + 1);
        const s = tangent * c;
        for (let k = 0; k < n; k++) {
          const [akp, akq] = [a[k][p], a[k][q]];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const [apk, aqk] = [a[p][k], a[q][k]];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
      }
    }
  }
  return a.map((row, i) => row[i]).sort((x, y) => y - x);
}

describe('POST /v1/curvature with a graph model (its Hessian known through the graph engine\'s products)', () => {
  const c = named('functional_residual_add_with_model_input');
  const H = c.expected.hessian;
  const P = H.length;
  const curvature = (options: object) => t.http().post('/v1/curvature').send({ ...c.request, ...options });

  it('hvp matches H v of the reference', async () => {
    const vectors = [0, 1].map((d) => Array.from({ length: P }, (_, i) => Math.cos(3 * i + d)));
    const res = await curvature({ quantity: 'hvp', vectors });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    const expected = vectors.map((v) => H.map((row) => row.reduce((s, h, j) => s + h * v[j], 0)));
    expect(relativeError(res.body.products.flat(), expected.flat())).toBeLessThan(1e-4);
  });

  it('the 2 largest eigenvalues match a float64 Jacobi eigendecomposition of the reference', async () => {
    const all = symmetricEigenvalues(H);
    const res = await curvature({ quantity: 'eigenvalues', k: 2, tolerance: 1e-5 });
    expect(res.status).toBe(200);
    const scale = Math.max(...all.map(Math.abs));
    expect(res.body.converged).toBe(true);
    res.body.eigenvalues.forEach((value: number, i: number) => expect(Math.abs(value - all[i]) / scale).toBeLessThan(1e-3));
  });

  it('a Hutchinson trace is within 4 standard errors of the reference trace; a density integrates to 1', async () => {
    const trace = H.reduce((s, row, i) => s + row[i], 0);
    const res = await curvature({ quantity: 'trace', method: 'hutchinson', samples: 300, seed: 2 });
    expect(res.status).toBe(200);
    expect(Math.abs(res.body.trace - trace)).toBeLessThan(4 * res.body.stdError);
    const density = await curvature({ quantity: 'density', runs: 2, steps: 10, gridPoints: 200 });
    expect(density.status).toBe(200);
    const { grid, density: values } = density.body;
    let integral = 0;
    for (let i = 1; i < grid.length; i++) integral += ((grid[i] - grid[i - 1]) * (values[i] + values[i - 1])) / 2;
    expect(Math.abs(integral - 1)).toBeLessThan(1e-3);
  });
});

describe('POST /v1/curvature: GGN, Fisher, diagonals and exact traces of a graph model (conv, batch normalization, add)', () => {
  const { request, expected } = JSON.parse(readFileSync(new URL('./fixtures/graph-curvature.json', import.meta.url), 'utf8')).cases.find(
    (c: { name: string }) => c.name === 'functional_conv_residual_block_batchnorm_relu',
  );
  const curvature = (options: object) => t.http().post('/v1/curvature').send({ ...request, ...options });
  const P: number = expected.size;

  it.each(['ggn', 'fisher'])('%s: the matrix as JSON, raw float32 and .npy matches the float64 reference; a PNG heatmap', async (quantity) => {
    const res = await curvature({ quantity });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expect(res.body.size).toBe(P);
    expect(relativeError(res.body[quantity].flat(), expected[quantity].matrix.flat())).toBeLessThan(1e-4);
    const binary = (accept: string) => t.http().post('/v1/curvature').set('accept', accept).send({ ...request, quantity }).buffer(true).parse(rawBody);
    const raw = await binary('application/octet-stream');
    expect(raw.status).toBe(200);
    expect(relativeError(decodeFloat32LE(raw.body), expected[quantity].matrix.flat())).toBeLessThan(1e-4);
    const npy = await binary('application/x-npy');
    expect(npy.status).toBe(200);
    expect(relativeError(decodeFloat32LE(npy.body.subarray(checkNpyHeader(npy.body, P, P))), expected[quantity].matrix.flat())).toBeLessThan(1e-4);
    const png = await binary('image/png');
    expect(png.status).toBe(200);
    expect(png.headers['content-type']).toBe('image/png');
    expect(png.body.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  });

  it.each(['hessian', 'ggn', 'fisher'])('the exact %s diagonal and trace match', async (matrix) => {
    const diagonal = await curvature({ quantity: 'diagonal', matrix });
    expect(diagonal.status, JSON.stringify(diagonal.body).slice(0, 300)).toBe(200);
    expect(relativeError(diagonal.body.diagonal, expected[matrix].diagonal)).toBeLessThan(1e-4);
    const trace = await curvature({ quantity: 'trace', method: 'exact', matrix });
    expect(trace.status).toBe(200);
    const scale = Math.max(...expected[matrix].diagonal.map(Math.abs));
    expect(Math.abs(trace.body.trace - expected[matrix].trace) / scale).toBeLessThan(1e-4);
  });

  it('the largest GGN eigenvalue and GGN-vector products match', async () => {
    const res = await curvature({ quantity: 'eigenvalues', matrix: 'ggn', k: 1, tolerance: 1e-5 });
    expect(res.status).toBe(200);
    const top = Math.max(...expected.ggn.eigenvalues);
    expect(Math.abs(res.body.eigenvalues[0] - top) / top).toBeLessThan(1e-3);
    const vectors = [Array.from({ length: P }, (_, i) => Math.sin(i + 1))];
    const products = await curvature({ quantity: 'hvp', matrix: 'fisher', vectors });
    expect(products.status).toBe(200);
    const reference = expected.fisher.matrix.map((row: number[]) => row.reduce((s, f, j) => s + f * vectors[0][j], 0));
    expect(relativeError(products.body.products[0], reference)).toBeLessThan(1e-4);
  });
});
