import { describe, expect, it } from 'vitest';
import { fixtures, kerasFixtures, relativeError, type FixtureCase } from './helpers.js';

// The reference files for issue #9 (test/fixtures/generate_graphs.py, generate_keras.py) are only as
// good as their shape: this checks each is self-consistent before the engine and importer tests use it.

const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** The shape of nested arrays (checking they are rectangular), or of a binary tensor after checking its byte count. */
function shapeOf(value: any): number[] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    expect(['float32', 'int32']).toContain(value.dtype);
    expect(Buffer.from(value.data, 'base64').length).toBe(product(value.shape) * 4);
    return value.shape;
  }
  if (!Array.isArray(value)) return [];
  const inner = value.map(shapeOf);
  for (const s of inner) expect(s).toEqual(inner[0]);
  return [value.length, ...(inner[0] ?? [])];
}

function expectConsistent(expected: FixtureCase['expected']) {
  const P = expected.gradient.length;
  expect(P).toBeGreaterThan(0);
  expect(Number.isFinite(expected.loss)).toBe(true);
  let offset = 0;
  for (const p of expected.parameters) {
    expect(p.offset).toBe(offset);
    expect(p.size).toBe(product(p.shape));
    offset += p.size;
  }
  expect(offset).toBe(P);
  expect(new Set(expected.parameters.map((p) => p.name)).size).toBe(expected.parameters.length);
  expect(expected.hessian.length).toBe(P);
  let scale = 0;
  for (const row of expected.hessian) {
    expect(row.length).toBe(P);
    for (const v of row) scale = Math.max(scale, Math.abs(v));
  }
  expect(scale).toBeGreaterThan(0);
  let asymmetry = 0;
  for (let i = 0; i < P; i++) for (let j = 0; j < i; j++) asymmetry = Math.max(asymmetry, Math.abs(expected.hessian[i][j] - expected.hessian[j][i]));
  // values are stored to 12 significant digits
  expect(asymmetry).toBeLessThanOrEqual(1e-10 * scale);
}

describe('graphs.json', () => {
  const cases = fixtures('graphs.json');

  it('has uniquely named cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  describe.each(cases)('$name', ({ request, expected }) => {
    it('has a symmetric P x P Hessian, a gradient and a contiguous parameter map of P entries', () => {
      expectConsistent(expected);
    });

    it('has data shaped [batch, ...inputShape] and targets for every example', () => {
      const x = shapeOf(request.data.x);
      expect(x.slice(1)).toEqual(request.model.inputShape);
      expect(shapeOf(request.data.y)[0]).toBe(x[0]);
    });

    it('names its parameters "<layer name>/<weight name>" after its layers, in wrt order when given', () => {
      const layerNames = request.model.layers.map((layer: any, i: number) => layer.name ?? `${layer.type}_${i + 1}`);
      const names = expected.parameters.map((p) => p.name);
      for (const name of names) expect(layerNames).toContain(name.split('/')[0]);
      if (request.wrt) expect(names).toEqual(request.wrt);
    });
  });
});

describe.runIf(kerasFixtures().length > 0)('keras/*.json', () => {
  describe.each(kerasFixtures())('$name', (fixture) => {
    it('has a symmetric P x P Hessian and a parameter map matching the Keras trainable weights', () => {
      expectConsistent(fixture.expected);
      expect(fixture.to_json).toHaveProperty('class_name');
      expect(fixture.to_json).toHaveProperty('config');
      // every parameter is one of the model's weights: its shape is among get_weights()' shapes
      const weightShapes = fixture.weights.map((w) => JSON.stringify(shapeOf(w)));
      for (const p of fixture.expected.parameters) expect(weightShapes).toContain(JSON.stringify(p.shape));
      expect(shapeOf(fixture.data.x)[0]).toBe(shapeOf(fixture.data.y)[0]);
    });

    it("agrees with TensorFlow's own float32 loss and gradient of the model", () => {
      const { expected, keras_check } = fixture;
      expect(Math.abs(keras_check.loss - expected.loss) / Math.max(1, Math.abs(expected.loss))).toBeLessThan(1e-4);
      expect(relativeError(keras_check.gradient, expected.gradient)).toBeLessThan(1e-4);
    });
  });
});
