import { readFileSync } from 'node:fs';

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

export const fixtures = (): FixtureCase[] =>
  JSON.parse(readFileSync(new URL('./fixtures/cases.json', import.meta.url), 'utf8')).cases;

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
