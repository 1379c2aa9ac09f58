/**
 * `npm run bench:curvature`: the top eigenvalues of the Hessian of a 784-1024-1024-10 tanh MLP
 * (P = 1,863,690) under softmax cross-entropy at batch 64, by the engine's block Lanczos on batched
 * Hessian-vector products, checked against an independent float64 power iteration with PyTorch
 * autograd HVPs (scripts/torch_power_iteration.py) on the same weights and data.
 * Prints the time, the iterations, the residuals and the process's peak RSS.
 * Usage: node dist/bench/curvature-large.js [--hidden 1024] [--batch 64] [--k 3] [--no-torch]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { estimateCost } from '../compute/cost.js';
import { costShape, initBackend, PreparedModel } from '../compute/index.js';
import { parseRequest } from '../hessian.js';
import { glorotUniform, mulberry32 } from '../compute/initializers.js';
import { lanczosEigen } from '../compute/algorithms/lanczos.js';
import { curvatureOperator } from '../compute/operators/index.js';
import { tanhMlp } from './cases.js';
import { eigenIterations, maxEigenBasis } from '../compute/quantities/index.js';

const option = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const hidden = option('hidden', 1024);
const batch = option('batch', 64);
const k = option('k', 3);
const sizes = [784, hidden, hidden, 10];

const random = mulberry32(2024);
const kernels = sizes.slice(1).map((units, l) => glorotUniform(sizes[l], units, 7, l));
const biases = sizes.slice(1).map((units) => Array.from({ length: units }, () => 0.2 * (random() - 0.5)));
const x = Array.from({ length: batch }, () => Array.from({ length: sizes[0] }, () => 2 * random() - 1));
const labels = Array.from({ length: batch }, () => Math.floor(random() * 10));
const request = parseRequest({
  model: tanhMlp(sizes, kernels, biases),
  loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true },
  data: { x, y: labels },
});

const backend = await initBackend((process.env.HESSIAN_BACKEND ?? 'auto') as Parameters<typeof initBackend>[0]);
const started = performance.now();
const model = new PreparedModel(request);
const blockSize = estimateCost(costShape(request), 2048 * 2 ** 20).blockSize;
// The same operator and Lanczos as quantity 'eigenvalues', with each product's time on stderr.
const operator = curvatureOperator(model, 'hessian', blockSize);
let products = 0;
const counted = {
  ...operator,
  apply(vectors: Float32Array, count: number) {
    const t0 = performance.now();
    const out = operator.apply(vectors, count);
    products += count;
    console.error(`  ${count} products in ${((performance.now() - t0) / 1000).toFixed(1)} s (${products} so far, ${((performance.now() - started) / 1000).toFixed(0)} s)`);
    return out;
  },
};
const lanczos = lanczosEigen(counted, { k, which: 'largest', tolerance: 1e-4, maxBasis: maxEigenBasis(model.size), maxIterations: eigenIterations(model.size, k), block: k, random: mulberry32(0) });
const result = { fields: { ...lanczos } };
const seconds = (performance.now() - started) / 1000;
const peakRssMb = process.resourceUsage().maxRSS / 1024;
const eigenvalues = lanczos.eigenvalues;
console.log(`MLP ${sizes.join('-')}, P = ${model.size}, batch ${batch}, backend ${backend.backend}`);
console.log(`engine: top-${k} eigenvalues ${eigenvalues.map((v) => v.toPrecision(7)).join(', ')}`);
console.log(`        residuals ${(result.fields.residuals as number[]).map((v) => v.toExponential(2)).join(', ')}, ${result.fields.iterations} block steps, converged ${result.fields.converged}`);
console.log(`        ${seconds.toFixed(1)} s (preparation included), ${products} Hessian-vector products, peak RSS ${peakRssMb.toFixed(0)} MB`);
model.dispose();

if (!process.argv.includes('--no-torch')) {
  const dir = mkdtempSync(join(tmpdir(), 'curvature-large-'));
  try {
    kernels.forEach((kernel, l) => writeFileSync(join(dir, `kernel${l}.f32`), Float32Array.from(kernel.flat())));
    biases.forEach((bias, l) => writeFileSync(join(dir, `bias${l}.f32`), Float32Array.from(bias)));
    writeFileSync(join(dir, 'x.f32'), Float32Array.from(x.flat()));
    writeFileSync(join(dir, 'meta.json'), JSON.stringify({ sizes, batch, labels }));
    const script = fileURLToPath(new URL('../../scripts/torch_power_iteration.py', import.meta.url));
    const torch = spawnSync('python3', [script, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (torch.status !== 0) throw new Error(`torch power iteration failed (exit ${torch.status})`);
    const reference = JSON.parse(torch.stdout.trim().split('\n').pop()!);
    const relative = Math.abs(eigenvalues[0] - reference.eigenvalue) / Math.abs(reference.eigenvalue);
    console.log(`torch float64 power iteration: ${reference.eigenvalue.toPrecision(7)} after ${reference.iterations} HVPs (${reference.seconds.toFixed(1)} s); relative difference ${relative.toExponential(2)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
