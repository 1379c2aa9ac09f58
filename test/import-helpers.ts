import { expect } from 'vitest';
import { SpecError, type FieldIssue } from '../src/compute/errors.js';

/** The issues of the SpecError that `run` throws (fails the test if it throws nothing or something else). */
export function issuesOf(run: () => unknown): FieldIssue[] {
  try {
    run();
  } catch (error) {
    if (error instanceof SpecError) return error.issues;
    throw error;
  }
  throw new Error('expected a SpecError');
}

const ODD_VALUES: unknown[] = [null, -1, 0, 2.5, 1e9, 'same', 'causal', '', [], [null], [1, 1], {}, { class_name: 'L2' }, true, [[1]], NaN, Infinity];

/** Paths to every value inside `value` (objects and arrays), at most `limit`. */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = [], limit = 4000): (string | number)[][] {
  if (out.length >= limit) return out;
  out.push(prefix);
  if (Array.isArray(value)) value.slice(0, 6).forEach((v, i) => paths(v, [...prefix, i], out, limit));
  else if (value && typeof value === 'object') Object.entries(value).forEach(([k, v]) => paths(v, [...prefix, k], out, limit));
  return out;
}

export function mutate(base: unknown, random: () => number): unknown {
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

export function expectModelOrSpecError(run: () => unknown) {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    for (const issue of (error as SpecError).issues) expect(typeof issue.path === 'string' && issue.message.length > 0).toBe(true);
  }
}

