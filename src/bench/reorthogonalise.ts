/**
 * `npm run bench:reorthogonalise`: one block Lanczos step's host-side reorthogonalisation at the large
 * model's size (P = 1,863,690, a basis of 64 vectors, a block of 3), three ways:
 * - one vector at a time (modified Gram-Schmidt twice over the whole basis, as before blocking),
 * - orthogonalizeBlock (the engine's: blocked over chunks of P, float64 sums),
 * - TF.js matMul on the backend (Qᵀ W and W - Q C twice, float32 sums), with the basis already a tensor
 *   and, separately, the time to upload it (the basis lives on the host, as Lanczos keeps it).
 * Prints each one's time and the largest |<q, w>| / ||w|| left.
 * Usage: node dist/bench/reorthogonalise.js [--size 1863690] [--basis 64] [--block 3]
 */
import { orthogonalizeBlock } from '../compute/algorithms/linalg.js';
import { initBackend } from '../compute/index.js';
import { mulberry32 } from '../compute/initializers.js';
import { tf } from '../compute/tf.js';

const option = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const size = option('size', 1_863_690);
const m = option('basis', 64);
const b = option('block', 3);
const backend = await initBackend((process.env.HESSIAN_BACKEND ?? 'auto') as Parameters<typeof initBackend>[0]);
const random = mulberry32(5);

const dot = (a: Float32Array, c: Float32Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * c[i];
  return s;
};
/** An orthonormal basis from random vectors, 8 at a time: against the basis so far, then among themselves. */
function orthonormalBasis(): Float32Array[] {
  const basis: Float32Array[] = [];
  while (basis.length < m) {
    const block = Array.from({ length: Math.min(8, m - basis.length) }, () => Float32Array.from({ length: size }, () => random() - 0.5));
    for (let pass = 0; pass < 2; pass++) orthogonalizeBlock(block, basis);
    for (const w of block) {
      for (let pass = 0; pass < 2; pass++) orthogonalizeBlock([w], basis);
      const norm = Math.sqrt(dot(w, w));
      for (let i = 0; i < size; i++) w[i] /= norm;
      basis.push(w);
    }
  }
  return basis;
}
const setupStarted = performance.now();
const basis = orthonormalBasis();
console.log(`(an orthonormal basis made in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s)`);
const candidates = Array.from({ length: b }, () => Float32Array.from({ length: size }, () => random() - 0.5));
const leftover = (block: Float32Array[]) => Math.max(...block.flatMap((w) => basis.map((q) => Math.abs(dot(q, w)) / Math.sqrt(dot(w, w)))));

function timed(name: string, run: (block: Float32Array[]) => void): void {
  const block = candidates.map((w) => Float32Array.from(w));
  const started = performance.now();
  run(block);
  console.log(`${name}: ${((performance.now() - started) / 1000).toFixed(2)} s, max |<q, w>| / ||w|| after: ${leftover(block).toExponential(2)}`);
}

console.log(`P = ${size}, basis ${m}, block ${b}, backend ${backend.backend}`);
timed('one vector at a time (MGS twice)', (block) => {
  for (const w of block) {
    for (let pass = 0; pass < 2; pass++) {
      for (const q of basis) {
        const c = dot(q, w);
        for (let i = 0; i < size; i++) w[i] -= c * q[i];
      }
    }
  }
});
timed('blocked over chunks of P (orthogonalizeBlock)', (block) => orthogonalizeBlock(block, basis));

const uploadStarted = performance.now();
const packed = new Float32Array(m * size);
basis.forEach((q, i) => packed.set(q, i * size));
const q = tf.tensor2d(packed, [m, size]);
console.log(`TF.js: uploading the basis: ${((performance.now() - uploadStarted) / 1000).toFixed(2)} s`);
timed(`TF.js matMul on ${backend.backend} (basis already a tensor)`, (block) => {
  const result = tf.tidy(() => {
    const rows = new Float32Array(b * size);
    block.forEach((v, d) => rows.set(v, d * size));
    let w: tf.Tensor2D = tf.tensor2d(rows, [b, size]);
    for (let pass = 0; pass < 2; pass++) w = tf.sub(w, tf.matMul(tf.matMul(w, q, false, true), q));
    return w.dataSync() as Float32Array;
  });
  block.forEach((w, d) => w.set(result.subarray(d * size, (d + 1) * size)));
});
q.dispose();
console.log(`load average: ${(await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').trim()}`);
