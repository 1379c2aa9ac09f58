import { existsSync, readdirSync, readFileSync } from 'node:fs';

export interface FixtureCase {
  name: string;
  request: any;
  expected: {
    loss: number;
    gradient: number[];
    hessian: number[][];
    parameters: { name: string; shape: number[]; offset: number; size: number }[];
  };
}

/** The cases of a reference file in test/fixtures: cases.json (dense MLPs) or graphs.json (layer graphs, issue #9). */
export const fixtures = (file: 'cases.json' | 'graphs.json' = 'cases.json'): FixtureCase[] =>
  JSON.parse(readFileSync(new URL(`./fixtures/${file}`, import.meta.url), 'utf8')).cases;

/** A real Keras model (test/fixtures/keras/*.json, made by generate_keras.py) with its float64 reference. */
export interface KerasFixture {
  name: string;
  keras_version: string;
  to_json: any;
  /** model.get_weights(): nested lists, non-trainable weights included. */
  weights: unknown[];
  data: { x: any; y: any };
  loss: string;
  expected: FixtureCase['expected'];
  /** TensorFlow's own float32 loss and gradient of the model (tf.GradientTape), in the order of expected.parameters. */
  keras_check: { loss: number; gradient: number[] };
}

export const kerasFixtures = (): KerasFixture[] => {
  const dir = new URL('./fixtures/keras/', import.meta.url);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => JSON.parse(readFileSync(new URL(file, dir), 'utf8')));
};

/** max |a - b| / max |b|: the relative error measure the acceptance criteria use. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? diff : diff / scale;
}
