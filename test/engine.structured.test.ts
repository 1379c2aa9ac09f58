import { beforeAll, describe, expect, it } from 'vitest';
import { computeHessian, initBackend } from '../src/compute/index.js';
import { fixtures, relativeError } from './helpers.js';

const TOLERANCE = 1e-4;

beforeAll(async () => {
  await initBackend();
});

describe.each(fixtures())('structured assembly: $name', ({ request, expected }) => {
  it('matches the float64 reference', async () => {
    const result = await computeHessian(request, { method: 'structured' });
    expect(result.meta.method).toBe('structured');
    expect(relativeError(result.hessian!, expected.hessian.flat())).toBeLessThan(TOLERANCE);
  });
});
