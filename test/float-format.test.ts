import { describe, expect, it } from 'vitest';
import { formatFloat32 } from '../src/jobs/float-format.js';

describe('formatFloat32 (JSON numbers of the matrix)', () => {
  it('reads back as the same float32 for a million random bit patterns', () => {
    const bits = new Uint32Array(1_000_000);
    let state = 2463534242;
    for (let i = 0; i < bits.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      bits[i] = state >>> 0;
    }
    const values = new Float32Array(bits.buffer).filter(Number.isFinite);
    let failures = 0;
    for (const v of values) if (Math.fround(JSON.parse(formatFloat32(v))) !== v) failures++;
    expect(failures).toBe(0);
  });

  it('writes short decimals the way JavaScript does', () => {
    const cases: [number, string][] = [
      [0.1, '0.1'], [-0.25, '-0.25'], [1, '1'], [100, '100'], [0, '0'], [1e21, '1e+21'],
      [1e-7, '1e-7'], [0.000001, '0.000001'], [123456789, '123456790'], [3.4028234663852886e38, '3.4028235e+38'],
    ];
    for (const [value, text] of cases) expect(formatFloat32(Math.fround(value))).toBe(text);
  });
});
