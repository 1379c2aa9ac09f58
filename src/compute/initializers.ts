/**
 * Deterministic weights for layers sent without them: Glorot-uniform kernel and zero bias, as Keras,
 * drawn from a small seeded generator (mulberry32) so the same seed always gives the same model.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Kernel [inputs][units] ~ U(-limit, limit), limit = sqrt(6 / (inputs + units)); layer index varies the stream. */
export function glorotUniform(inputs: number, units: number, seed: number, layerIndex: number): number[][] {
  const values = glorotUniformValues(inputs * units, inputs, units, seed, layerIndex);
  return Array.from({ length: inputs }, (_, i) => Array.from(values.subarray(i * units, (i + 1) * units)));
}

/** `count` values ~ U(-limit, limit), limit = sqrt(6 / (fanIn + fanOut)), row-major, from the same stream as glorotUniform. */
export function glorotUniformValues(count: number, fanIn: number, fanOut: number, seed: number, layerIndex: number): Float64Array {
  const random = mulberry32(seed * 1000003 + layerIndex * 7919 + 1);
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return Float64Array.from({ length: count }, () => (2 * random() - 1) * limit);
}
