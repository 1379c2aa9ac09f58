/**
 * Mutated models in every format: the importers answer each with a model or a SpecError whose issues
 * name fields, never another error (which the service would answer with a 500). Seeded and bounded.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../src/compute/initializers.js';
import { SpecError } from '../src/compute/errors.js';
import { importModel, importRequest } from '../src/schemas/import/index.js';
import { fixtures, kerasFixtures } from './helpers.js';

const ODD_VALUES: unknown[] = [null, -1, 0, 2.5, 1e9, 'same', 'causal', '', [], [null], [1, 1], {}, { class_name: 'L2' }, true, [[1]], NaN, Infinity];

/** Paths to every value inside `value` (objects and arrays), at most `limit`. */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = [], limit = 4000): (string | number)[][] {
  if (out.length >= limit) return out;
  out.push(prefix);
  if (Array.isArray(value)) value.slice(0, 6).forEach((v, i) => paths(v, [...prefix, i], out, limit));
  else if (value && typeof value === 'object') Object.entries(value).forEach(([k, v]) => paths(v, [...prefix, k], out, limit));
  return out;
}

function mutate(base: unknown, random: () => number): unknown {
  const copy = structuredClone(base) as any;
  const all = paths(copy).filter((p) => p.length > 0);
  const path = all[Math.floor(random() * all.length)];
  let parent = copy;
  for (const key of path.slice(0, -1)) parent = parent[key];
  const key = path[path.length - 1];
  const roll = random();
  if (roll < 0.2) delete parent[key];
  else if (roll < 0.3 && Array.isArray(parent[key])) parent[key].push(structuredClone(parent[key][0]));
  else parent[key] = structuredClone(ODD_VALUES[Math.floor(random() * ODD_VALUES.length)]);
  return copy;
}

function expectModelOrSpecError(run: () => unknown) {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    for (const issue of (error as SpecError).issues) expect(typeof issue.path === 'string' && issue.message.length > 0).toBe(true);
  }
}

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
