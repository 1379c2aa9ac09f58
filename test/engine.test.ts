import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../src/compute/tf.js';
import {
  hessianRows,
  hessianTimes,
  initBackend,
  NumericalError,
  PreparedModel,
  SpecError,
} from '../src/compute/index.js';
import { computeHessian, parseRequest } from '../src/hessian.js';
import { EXAMPLE_REQUEST, EXAMPLE_RESPONSE } from '../src/schemas/examples.js';
import { fixtures, relativeError } from './helpers.js';

beforeAll(async () => {
  await initBackend();
});

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));
const byName = (name: string) => fixtures().find((c) => c.name === name)!;

describe('the seed case: a 2x2 linear layer without bias under MSE', () => {
  it('is a 4x4 matrix with every cross term and its parameter map', async () => {
    const result = await computeHessian(EXAMPLE_REQUEST);
    expect(result.size).toBe(4);
    expect(result.parameters).toEqual([{ name: 'dense_1/kernel', layer: 0, kind: 'kernel', shape: [2, 2], size: 4, offset: 0 }]);
    // Analytic: L = mean over B*units of (xW - y)^2, so H[(i,k),(j,l)] = 2/(B*units) * sum_b x_bi x_bj [k == l].
    const { x } = EXAMPLE_REQUEST.data;
    const expected: number[] = [];
    for (let i = 0; i < 2; i++)
      for (let k = 0; k < 2; k++)
        for (let j = 0; j < 2; j++)
          for (let l = 0; l < 2; l++) expected.push(k === l ? (2 / 6) * x.reduce((s, row) => s + row[i] * row[j], 0) : 0);
    expect(relativeError(result.hessian!, expected)).toBeLessThan(1e-6);
  });

  it('is what the API documentation shows as the example answer', async () => {
    const result = await computeHessian(EXAMPLE_REQUEST);
    expect(relativeError(result.hessian!, EXAMPLE_RESPONSE.hessian.flat())).toBeLessThan(1e-6);
    expect(relativeError(result.gradient, EXAMPLE_RESPONSE.gradient)).toBeLessThan(1e-6);
    expect(result.loss).toBeCloseTo(EXAMPLE_RESPONSE.loss, 5);
  });
});

describe('Hessian-vector products (the primitive behind the matrix)', () => {
  it.each(['l2_some_layers', 'act_softmax_hidden', 'wrt_out_of_order_dense_1_bias_dense_3_kernel'])(
    'H V for random V equals the full matrix times V (%s)',
    async (name) => {
      const { request, expected } = byName(name);
      const size = expected.gradient.length;
      const count = 5;
      const vectors = Float32Array.from({ length: count * size }, (_, i) => Math.sin(i * 12.9898) * 2);
      const model = new PreparedModel(parseRequest(request));
      const products = hessianTimes(model, vectors, count);
      model.dispose();
      const reference = new Float64Array(count * size);
      for (let d = 0; d < count; d++)
        for (let r = 0; r < size; r++) {
          let s = 0;
          for (let c = 0; c < size; c++) s += expected.hessian[r][c] * vectors[d * size + c];
          reference[d * size + r] = s;
        }
      expect(relativeError(products, reference)).toBeLessThan(1e-4);
    },
  );
});

describe('row blocks', () => {
  it('hands blocks to onRows in order of rows, reassembling to the reference matrix', async () => {
    const { request, expected } = byName('larger_5_12_12_4_tanh_cce_logits');
    const size = expected.gradient.length;
    const assembled = new Float32Array(size * size);
    const seen: number[] = [];
    const result = await computeHessian(request, {
      blockSize: 7,
      onRows: (row, count, rows) => {
        expect(rows.length).toBe(count * size);
        seen.push(row);
        assembled.set(rows, row * size);
      },
    });
    expect(result.hessian).toBeUndefined();
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(relativeError(assembled, expected.hessian.flat())).toBeLessThan(1e-4);
  });
});

describe('upper-only row blocks (the service fills the rest by symmetry)', () => {
  it('compute the columns of the block layer and above exactly, and leave lower layers at 0', () => {
    const { request, expected } = byName('depth_3_layers_tanh_sigmoid_gelu');
    const model = new PreparedModel(parseRequest(request));
    const size = model.size;
    const layer2 = model.parameters.findIndex((t) => t.layer === 1);
    const block = { tensor: layer2, start: 3, count: 5, row: model.parameters[layer2].offset + 3 };
    const rows = hessianRows(model, block, true);
    model.dispose();
    const firstUpper = model.parameters[layer2].offset;
    for (let d = 0; d < block.count; d++) {
      const row = rows.subarray(d * size, (d + 1) * size);
      const reference = expected.hessian[block.row + d];
      expect(Array.from(row.subarray(0, firstUpper)).every((v) => v === 0)).toBe(true);
      expect(relativeError(row.subarray(firstUpper), reference.slice(firstUpper))).toBeLessThan(1e-4);
    }
  });
});

describe('weights left out of the request', () => {
  it('are drawn deterministically from the seed (Glorot-uniform kernel, zero bias)', async () => {
    const request = {
      model: { inputShape: [3], seed: 7, layers: [{ type: 'dense', units: 4, activation: 'tanh' }, { type: 'dense', units: 2 }] },
      loss: 'meanSquaredError',
      data: { x: [[1, 2, 3], [0, -1, 0.5]], y: [[0, 1], [1, 0]] },
    };
    const a = await computeHessian(request);
    const b = await computeHessian(request);
    const c = await computeHessian({ ...request, model: { ...request.model, seed: 8 } });
    expect(a.hessian).toEqual(b.hessian);
    expect(a.hessian).not.toEqual(c.hessian);
    expect(a.size).toBe(3 * 4 + 4 + 4 * 2 + 2);
  });
});

describe('bad input raises a typed error naming the field', () => {
  const base = () => clone(byName('depth_3_layers_tanh_sigmoid_gelu').request);
  const cases: [string, (r: any) => void, RegExp][] = [
    ['kernel rows that do not chain', (r) => r.model.layers[1].kernel.pop(), /model\.layers\[1\]\.kernel has \d+ rows but the previous layer has \d+ units/],
    ['a kernel row of the wrong width', (r) => r.model.layers[0].kernel[1].push(0), /model\.layers\[0\]\.kernel\[1\] has \d+ entries/],
    ['bias length', (r) => r.model.layers[2].bias.push(1), /model\.layers\[2\]\.bias has \d+ entries but the layer has \d+ units/],
    ['unknown activation', (r) => (r.model.layers[0].activation = 'swishy'), /model\.layers\[0\]\.activation/],
    ['unknown loss', (r) => (r.loss = 'hinge'), /loss/],
    ['y of the wrong width', (r) => r.data.y[2].push(0), /data\.y\[2\] must have \d+ entries/],
    ['x of the wrong width', (r) => r.data.x[0].pop(), /data\.x\[0\] has \d+ features/],
    ['non-finite weight', (r) => (r.model.layers[1].kernel[0][0] = Infinity), /model\.layers\[1\]\.kernel\[0\]\[0\]/],
    ['NaN input', (r) => (r.data.x[1][0] = NaN), /data\.x\[1\]\[0\]/],
    ['unknown wrt tensor', (r) => (r.wrt = ['dense_9/kernel']), /wrt\[0\] 'dense_9\/kernel' is not a parameter tensor/],
    ['unknown layer type', (r) => (r.model.layers[0].type = 'conv2d'), /model\.layers\[0\]\.type/],
  ];
  it.each(cases)('%s', (_label, mutate, message) => {
    const request = base();
    mutate(request);
    let error: unknown;
    try {
      parseRequest(request);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecError);
    expect((error as SpecError).message).toMatch(message);
  });

  it('sparse labels outside the classes', () => {
    const request = clone(byName('loss_sparse_cce_logits').request);
    request.data.y[0] = 99;
    expect(() => parseRequest(request)).toThrow(/data\.y\[0\] must be an integer class label/);
  });

  it('a loss that is not finite on the data (log of 0) is a NumericalError, not a matrix', async () => {
    const request = {
      model: { inputShape: [1], layers: [{ type: 'dense', units: 1, useBias: false, kernel: [[0]] }] },
      loss: 'binaryCrossentropy',
      data: { x: [[1]], y: [[1]] },
    };
    await expect(computeHessian(request)).rejects.toBeInstanceOf(NumericalError);
    // ...and leaves no TF.js tensor behind, however often it happens.
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await expect(computeHessian(request)).rejects.toBeInstanceOf(NumericalError);
    expect(tf.memory().numTensors).toBe(before);
  });
});
