import { beforeAll, describe, expect, it } from 'vitest';
import type { BackendPreference } from '../src/compute/backend.js';
import { initBackend, type BackendInfo } from '../src/compute/index.js';
import { computeHessian } from '../src/hessian.js';
import { fixtures, relativeError } from './helpers.js';

// Every case was computed in float64 by PyTorch autograd (test/fixtures/generate.py), which shares
// no code with the engine's explicit derivative rules.
const TOLERANCE = 1e-4;

/** Checks every fixture case on the given backend ('auto': whichever the machine has). */
export function fixtureSuite(preference: BackendPreference) {
  let backend: BackendInfo;
  beforeAll(async () => {
    backend = await initBackend(preference);
  });

  describe.each(fixtures())('$name', ({ request, expected }) => {
    it('matches the float64 reference: parameters, loss, gradient and every Hessian block', async () => {
      const result = await computeHessian(request);
      if (preference !== 'auto') expect(result.meta.backend).toBe(preference);
      expect(result.meta.backend).toBe(backend.backend);
      expect(result.parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size }))).toEqual(expected.parameters);
      expect(result.size).toBe(expected.gradient.length);
      expect(Math.abs(result.loss - expected.loss) / Math.max(1, Math.abs(expected.loss))).toBeLessThan(TOLERANCE);
      expect(relativeError(result.gradient, expected.gradient)).toBeLessThan(TOLERANCE);
      expect(relativeError(result.hessian!, expected.hessian.flat())).toBeLessThan(TOLERANCE);
    });
  });
}
