/**
 * Models as users have them, through the importers and the graph engine, against float64 references
 * that share no code with either: the real Keras 3 models of test/fixtures/keras (their to_json and
 * get_weights(), the reference by generate_keras.py, cross-checked with TensorFlow), and every
 * graphs.json request (our JSON) read by importRequest instead of a test-only converter.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { PreparedGraph } from '../src/compute/graph/index.js';
import { initBackend } from '../src/compute/index.js';
import { importRequest } from '../src/schemas/import/index.js';
import { fullHessian } from './graph-helpers.js';
import { fixtures, kerasFixtures, relativeError, type FixtureCase } from './helpers.js';

const TOLERANCE = 1e-4;

beforeAll(async () => {
  await initBackend();
});

function expectReference(body: unknown, expected: FixtureCase['expected']) {
  const graph = new PreparedGraph(importRequest(body));
  try {
    expect(graph.parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size }))).toEqual(expected.parameters);
    expect(Math.abs(graph.loss - expected.loss) / Math.max(1, Math.abs(expected.loss))).toBeLessThan(TOLERANCE);
    expect(relativeError(graph.gradient, expected.gradient)).toBeLessThan(TOLERANCE);
    expect(relativeError(fullHessian(graph, 32), expected.hessian.flat())).toBeLessThan(TOLERANCE);
  } finally {
    graph.dispose();
  }
}

describe('Keras 3 models: to_json + get_weights(), the loss from compile_config', () => {
  it.each(kerasFixtures().map((f) => [f.name, f] as const))('%s', (_name, fixture) => {
    expectReference({ model: { ...fixture.to_json, weights: fixture.weights }, data: fixture.data }, fixture.expected);
  });
});

describe('graphs.json through importRequest', () => {
  it.each(fixtures('graphs.json').map((c) => [c.name, c] as const))('%s', (_name, fixture) => {
    expectReference(fixture.request, fixture.expected);
  });
});
