/** POST /v1/curvature end to end against the float64 PyTorch references (test/fixtures/curvature.json). */
import { parse as parseNpy } from 'npyjs';
import { describe, expect, it } from 'vitest';
import { checkNpyHeader, decodeFloat32LE, rawBody, removeDir, startApp, useApp } from './api-helpers.js';
import { curvatureCases } from './curvature-helpers.js';
import { relativeError } from './helpers.js';

const t = useApp({ MAX_PARAMETERS: 50 });
const cases = curvatureCases();
const threeLayers = cases.find((c) => c.name === 'sigmoid_softplus_mse_3layers')!; // P = 59
const withWrt = cases.find((c) => c.name === 'gelu_sparse_logits_wrt')!;

const post = (body: object, accept?: string) => {
  const req = t.http().post('/v1/curvature').send(body);
  return accept ? req.set('accept', accept) : req;
};

describe('POST /v1/curvature', () => {
  it('hvp: products with the vectors over the wrt tensors, and the parameter map', async () => {
    const res = await post({ ...withWrt.request, quantity: 'hvp', vectors: withWrt.expected.vectors });
    expect(res.status).toBe(200);
    expect(res.body.size).toBe(withWrt.expected.size);
    expect(res.body.parameters.map((p: { name: string }) => p.name)).toEqual(withWrt.request.wrt);
    expect(res.body.matrix).toBe('hessian');
    expect(relativeError(res.body.products.flat(), withWrt.expected.hessian.products.flat())).toBeLessThan(1e-4);
    expect(res.body.meta.dtype).toBe('float32');
  });

  it('ggn as JSON, and as .npy and raw float32 with the same values', async () => {
    const body = { ...withWrt.request, quantity: 'ggn' };
    const json = await post(body);
    expect(json.status).toBe(200);
    const reference = withWrt.expected.ggn.matrix.flat();
    expect(relativeError(json.body.ggn.flat(), reference)).toBeLessThan(1e-4);
    const npy = await post(body, 'application/x-npy').buffer(true).parse(rawBody);
    expect(npy.status).toBe(200);
    const size = withWrt.expected.size;
    const offset = checkNpyHeader(npy.body, size, size);
    const array = parseNpy(npy.body.buffer.slice(npy.body.byteOffset, npy.body.byteOffset + npy.body.length) as ArrayBuffer);
    expect(array.shape).toEqual([size, size]);
    expect(relativeError(decodeFloat32LE(npy.body.subarray(offset)), reference)).toBeLessThan(1e-4);
    const raw = await post(body, 'application/octet-stream').buffer(true).parse(rawBody);
    expect(raw.headers['x-hessian-size']).toBe(String(size));
    expect(relativeError(decodeFloat32LE(raw.body), reference)).toBeLessThan(1e-4);
  });

  it('fisher as JSON', async () => {
    const res = await post({ ...withWrt.request, quantity: 'fisher' });
    expect(res.status).toBe(200);
    expect(relativeError(res.body.fisher.flat(), withWrt.expected.fisher.matrix.flat())).toBeLessThan(1e-4);
  });

  it('diagonal, eigenvalues, trace and density work past MAX_PARAMETERS, where the matrix does not', async () => {
    const { request, expected } = threeLayers;
    expect(expected.size).toBeGreaterThan(t.config.MAX_PARAMETERS);
    const tooBig = await post({ ...request, quantity: 'ggn' });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error).toBe('too_many_parameters');

    const diagonal = await post({ ...request, quantity: 'diagonal', matrix: 'ggn' });
    expect(diagonal.status).toBe(200);
    expect(relativeError(diagonal.body.diagonal, expected.ggn.diagonal)).toBeLessThan(1e-4);

    const eigen = await post({ ...request, quantity: 'eigenvalues', k: 2, which: 'largest', vectors: true });
    expect(eigen.status).toBe(200);
    const top = expected.hessian.eigenvalues.slice(-2).reverse();
    expect(relativeError(eigen.body.eigenvalues, top)).toBeLessThan(1e-3);
    expect(eigen.body.eigenvectors).toHaveLength(2);
    expect(eigen.body.eigenvectors[0]).toHaveLength(expected.size);
    expect(eigen.body.residuals).toHaveLength(2);
    expect(eigen.body.converged).toBe(true);

    const trace = await post({ ...request, quantity: 'trace' });
    expect(Math.abs(trace.body.trace - expected.hessian.trace)).toBeLessThan(1e-4 * Math.max(...expected.hessian.diagonal.map(Math.abs)));

    const density = await post({ ...request, quantity: 'density', runs: 3, steps: 20, gridPoints: 100 });
    expect(density.status).toBe(200);
    expect(density.body.grid).toHaveLength(100);
    expect(density.body.density).toHaveLength(100);
    expect(density.body.nodes).toHaveLength(3);
  });

  it.each([
    [{ quantity: 'hvp' }, 'vectors', 'vectors is required'],
    [{ quantity: 'hvp', vectors: [[1, 2]] }, 'vectors[0]', 'vectors[0] has 2 entries but P is 59'],
    [{ quantity: 'diagonal', k: 3 }, 'k', "k does not apply to quantity 'diagonal'"],
    [{ quantity: 'ggn', matrix: 'fisher' }, 'matrix', "matrix does not apply to quantity 'ggn'"],
    [{ quantity: 'eigenvalues', vectors: [[1]] }, 'vectors', 'vectors must be true or false'],
    [{ quantity: 'curvy' }, 'quantity', 'quantity'],
    [{ quantity: 'eigenvalues', k: 0 }, 'k', 'k'],
    [{ quantity: 'trace', method: 'guess' }, 'method', 'method'],
  ])('400 for %j, naming %s', async (fields, path, message) => {
    const res = await post({ ...threeLayers.request, ...fields });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.message).toContain(message);
    expect(res.body.details.map((d: { path: string }) => d.path)).toContain(path);
  });

  it('406 for a binary form of a quantity served only as JSON', async () => {
    const res = await post({ ...threeLayers.request, quantity: 'diagonal' }, 'application/x-npy');
    expect(res.status).toBe(406);
    expect(res.body.error).toBe('not_acceptable');
  });

  it('422 when the loss is not finite on the data (a probability of exactly 1 under binary cross-entropy)', async () => {
    const res = await post({
      model: { inputShape: [1], layers: [{ type: 'dense', units: 1, activation: 'linear', useBias: false, kernel: [[1]] }] },
      loss: 'binaryCrossentropy',
      data: { x: [[1]], y: [[0]] },
      quantity: 'eigenvalues',
    });
    expect(res.status).toBe(422);
    expect(res.body.error).toBe('numerical_error');
  });

  it('429 beyond MAX_QUEUED_JOBS running curvature requests; the others answer', async () => {
    const small = await startApp({ MAX_QUEUED_JOBS: 1, WORKERS: 1 });
    try {
      const body = { ...threeLayers.request, quantity: 'trace', method: 'hutchinson', samples: 3000 };
      const answers = await Promise.all([0, 1, 2].map(() => small.http().post('/v1/curvature').send(body)));
      const statuses = answers.map((r) => r.status).sort();
      expect(statuses[0]).toBe(200);
      expect(statuses).toContain(429);
      const refused = answers.find((r) => r.status === 429)!;
      expect(refused.body.error).toBe('queue_full');
      expect(refused.headers['retry-after']).toBeDefined();
    } finally {
      await small.close();
      await removeDir(small.dir);
    }
  });

  describe('admission before any memory is allocated, for a seeded 784-1024-1024-10 model (P = 1,863,690)', () => {
    const large = {
      model: { inputShape: [784], seed: 1, layers: [{ type: 'dense', units: 1024, activation: 'tanh' }, { type: 'dense', units: 1024, activation: 'tanh' }, { type: 'dense', units: 10 }] },
      loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true },
      data: { x: [Array.from({ length: 784 }, (_, i) => Math.cos(i))], y: [3] },
    };

    it('400 naming k when the Lanczos basis cannot hold 2k vectors', async () => {
      const res = await post({ ...large, quantity: 'eigenvalues', k: 64 });
      expect(res.status).toBe(400);
      expect(res.body.details[0].path).toBe('k');
      expect(res.body.message).toContain('P = 1863690');
    });

    it('400 naming runs and steps when the quadrature would not fit its budget', async () => {
      const res = await post({ ...large, quantity: 'density', runs: 100, steps: 100 });
      expect(res.status).toBe(400);
      expect(res.body.message).toContain('lower runs or steps');
    });

    it('413 for its GGN as a matrix', async () => {
      const res = await post({ ...large, quantity: 'ggn' });
      expect(res.status).toBe(413);
      expect(res.body.error).toBe('too_many_parameters');
    });
  });
});
