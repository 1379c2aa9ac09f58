/**
 * Mutated models in every format: the importers answer each with a model or a SpecError whose issues
 * name fields, never another error (which the service would answer with a 500). Seeded and bounded.
 */
import { describe, it } from 'vitest';
import { mulberry32 } from '../src/compute/initializers.js';
import { importModel, importRequest } from '../src/schemas/import/index.js';
import { fixtures, kerasFixtures } from './helpers.js';
import { expectModelOrSpecError, mutate } from './import-helpers.js';

describe('mutated models never crash an importer', () => {
  const graphs = fixtures('graphs.json').slice(0, 12);
  const keras = kerasFixtures();
  const bases: [string, unknown, unknown][] = [
    ...graphs.map((c) => [c.name, c.request.model, c.request] as [string, unknown, unknown]),
    ...keras.map((f) => [f.name, { ...f.to_json, weights: f.weights }, { model: { ...f.to_json, weights: f.weights }, data: f.data }] as [string, unknown, unknown]),
  ];
  it.each(bases)('%s: 150 mutations of the model and of the request', (name, model, request) => {
    const random = mulberry32(name.length * 7919 + 17);
    for (let i = 0; i < 150; i++) {
      expectModelOrSpecError(() => importModel(mutate(model, random), 'model'));
      expectModelOrSpecError(() => importRequest(mutate(request, random)));
    }
  });
});
