/**
 * The graph engine (src/compute/graph) on dense stacks: the float64 PyTorch references of cases.json
 * (independent of both engines), the dense engine's answer, and the consistency of its own products
 * (rows vs H V, upper-only rows vs full rows).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { planRowBlocks } from '../src/compute/curvature.js';
import { PreparedGraph } from '../src/compute/graph/index.js';
import { engineRequest, initBackend, SpecError } from '../src/compute/index.js';
import { computeHessian, parseRequest } from '../src/hessian.js';
import type { EngineRequest } from '../src/compute/spec.js';
import { fullHessian, randomVectors, referenceTimes } from './graph-helpers.js';
import { fixtures, relativeError } from './helpers.js';

const TOLERANCE = 1e-4;

/** A dense-stack body as the service hands it to the engine. */
const toEngine = (body: unknown): EngineRequest => engineRequest(parseRequest(body));

beforeAll(async () => {
  await initBackend();
});

function withGraph<T>(request: EngineRequest, use: (graph: PreparedGraph) => T): T {
  const graph = new PreparedGraph(request);
  try {
    return use(graph);
  } finally {
    graph.dispose();
  }
}

describe.each(fixtures())('dense stack $name', ({ request, expected }) => {
  it('matches the float64 reference and the dense engine: loss, gradient, Hessian, H V', async () => {
    const dense = await computeHessian(request);
    withGraph(toEngine(request), (graph) => {
      expect(graph.parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size }))).toEqual(expected.parameters);
      expect(Math.abs(graph.loss - expected.loss) / Math.max(1, Math.abs(expected.loss))).toBeLessThan(TOLERANCE);
      expect(relativeError(graph.gradient, expected.gradient)).toBeLessThan(TOLERANCE);
      const hessian = fullHessian(graph, 7);
      expect(relativeError(hessian, expected.hessian.flat())).toBeLessThan(TOLERANCE);
      expect(relativeError(hessian, dense.hessian!)).toBeLessThan(TOLERANCE);
      const count = 3;
      const vectors = randomVectors(count, graph.size, 11);
      expect(relativeError(graph.times('hessian', vectors, count), referenceTimes(expected.hessian, vectors, count))).toBeLessThan(TOLERANCE);
    });
  });
});

describe('row blocks', () => {
  const body = fixtures().find((c) => c.name === 'depth_4_layers_mixed')!.request;

  it('upper-only rows equal the full rows on the columns of their node and later ones, and are 0 elsewhere', () => {
    withGraph(toEngine(body), (graph) => {
      const p = graph.size;
      const full = fullHessian(graph, 5);
      for (const block of planRowBlocks(graph.parameters, 5)) {
        const rows = graph.rows(block, true);
        const layer = graph.parameters[block.tensor].layer;
        for (const t of graph.parameters) {
          for (let d = 0; d < block.count; d++) {
            for (let e = 0; e < t.size; e++) {
              const got = rows[d * p + t.offset + e];
              expect(got).toBe(t.layer >= layer ? full[(block.row + d) * p + t.offset + e] : 0);
            }
          }
        }
      }
    });
  });

  it('block size does not change the rows', () => {
    withGraph(toEngine(body), (graph) => {
      expect(relativeError(fullHessian(graph, 1), fullHessian(graph, 64))).toBeLessThan(1e-6);
    });
  });
});

describe('refusals', () => {
  const base = () => toEngine(fixtures().find((c) => c.name === 'depth_4_layers_mixed')!.request);

  it('a kernel of the wrong size names its layer and the shape it needs', () => {
    const request = base();
    request.model.nodes[1].weights.kernel = new Float32Array(5);
    expect(() => new PreparedGraph(request)).toThrow(SpecError);
    expect(() => new PreparedGraph(request)).toThrow(/layer 'dense_2' \(dense\): kernel has 5 values, but its shape \[\d+,\d+\] needs \d+/);
  });

  it('an unknown input name, a targets width that does not fit, an unknown wrt name', () => {
    const unknownInput = base();
    unknownInput.model.nodes[2].inputs = ['nowhere'];
    expect(() => new PreparedGraph(unknownInput)).toThrow(/takes 'nowhere', which is neither the model input nor a layer before it/);
    const targets = base();
    targets.data.y = { rows: targets.data.y.rows, columns: 1, values: new Float32Array(targets.data.y.rows) };
    expect(() => new PreparedGraph(targets)).toThrow(/data.y has 1 targets per example, but the model output has \d+ units/);
    const wrt = base();
    wrt.wrt = ['dense_9/kernel'];
    expect(() => new PreparedGraph(wrt)).toThrow(/wrt\[0\] names 'dense_9\/kernel', which is not a trainable parameter/);
  });
});

describe('large batches', () => {
  it('a max pool over 400k cells of a batch prepares, and its loss is the mean of its pooled values', () => {
    const [batch, side, channels] = [64, 40, 4];
    const values = Float32Array.from({ length: batch * side * side * channels }, (_, i) => Math.sin(i));
    const request: EngineRequest = {
      model: {
        input: { name: 'input', shape: [side, side, channels], dtype: 'float32' },
        nodes: [
          { name: 'pool', type: 'globalMaxPooling2d', inputs: ['input'], config: {}, weights: {}, trainable: true },
          { name: 'dense', type: 'dense', inputs: ['pool'], config: { units: 1, activation: { type: 'linear' }, useBias: true, kernelL2: 0 }, weights: { kernel: new Float32Array(channels).fill(1), bias: new Float32Array(1) }, trainable: true },
        ],
        output: 'dense',
        seed: 0,
      },
      loss: { type: 'meanSquaredError' },
      data: { x: { shape: [batch, side, side, channels], values }, y: { rows: batch, columns: 1, values: new Float32Array(batch) } },
    };
    // Independent: the per-example sum over channels of each plane's maximum, squared, averaged.
    let expected = 0;
    for (let b = 0; b < batch; b++) {
      let sum = 0;
      for (let c = 0; c < channels; c++) {
        let most = -Infinity;
        for (let cell = 0; cell < side * side; cell++) most = Math.max(most, values[(b * side * side + cell) * channels + c]);
        sum += most;
      }
      expected += (sum * sum) / batch;
    }
    withGraph(request, (graph) => expect(Math.abs(graph.loss - expected) / expected).toBeLessThan(1e-5));
  });
});

