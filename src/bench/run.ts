/**
 * `npm run bench`: times full Hessians of tanh MLPs with softmax cross-entropy (batch 256) through the
 * service's own path (job manager, worker pool, result file), and PyTorch's
 * torch.autograd.functional.hessian (the faster of its two modes, best of two runs) on the same
 * weights in the same run when python3 has torch. Both are timed after one untimed run.
 * Usage: node dist/bench/run.js [--cases 1507,6154,11878] [--no-torch]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRequest } from '../compute/index.js';
import { glorotUniform } from '../compute/initializers.js';
import { loadConfig } from '../config.js';
import { JobManager } from '../jobs/manager.js';
import { ComputePool } from '../jobs/pool.js';
import { ResultStore } from '../jobs/store.js';
import type { HessianRequest } from '../schemas/model.js';

const CASES: Record<number, number[]> = {
  1507: [10, 32, 32, 3],
  6154: [20, 64, 64, 10],
  11878: [25, 92, 92, 10],
};
const BATCH = 256;

function mlpRequest(sizes: number[], batch: number): HessianRequest {
  let state = 12345;
  const random = () => ((state = (state * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const classes = sizes[sizes.length - 1];
  return parseRequest({
    model: {
      inputShape: [sizes[0]],
      layers: sizes.slice(1).map((units, l) => ({
        type: 'dense',
        units,
        activation: l === sizes.length - 2 ? 'linear' : 'tanh',
        kernel: glorotUniform(sizes[l], units, 1, l),
        bias: Array.from({ length: units }, () => 0.1 * random()),
      })),
    },
    loss: { type: 'categoricalCrossentropy', fromLogits: true },
    data: {
      x: Array.from({ length: batch }, () => Array.from({ length: sizes[0] }, random)),
      y: Array.from({ length: batch }, (_, b) => Array.from({ length: classes }, (_, c) => (c === b % classes ? 1 : 0))),
    },
  });
}

/**
 * Multiply-add FLOPs of the matMuls the R-operator passes run (see compute/curvature.ts) over all P rows,
 * with the service's upper-only blocks: a direction in layer s runs forward from s and backward down to s.
 */
function matmulFlops(sizes: number[], batch: number): number {
  const layers = sizes.slice(1).map((m, l) => ({ n: sizes[l], m }));
  let total = 0;
  layers.forEach(({ n, m }, s) => {
    const directions = (n + 1) * m;
    let perDirection = 0;
    layers.forEach((layer, l) => {
      if (l < s) return;
      const nm = layer.n * layer.m;
      perDirection += 2 * batch * (layer.n + 1) * layer.m; // a_aug^T R(delta)
      if (l > s) perDirection += 3 * 2 * batch * nm; // R(z) forward, R(a_in)^T delta, R(delta) W^T
    });
    total += directions * perDirection;
  });
  return total;
}

function torchSeconds(request: HessianRequest, threads: number): { seconds: number; version: string; mode: string } | string {
  const script = fileURLToPath(new URL('../../scripts/torch_hessian.py', import.meta.url));
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status !== 0) continue;
    // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, set on some machines here for old OpenBLAS builds, slow a current one.
    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const run = spawnSync(python, [script, String(threads)], { input: JSON.stringify(request), encoding: 'utf8', timeout: 900_000, maxBuffer: 1 << 20, env });
    if (run.status !== 0) return `failed: ${(run.stderr || run.error?.message || '').trim().split('\n').pop()}`;
    const out = JSON.parse(run.stdout);
    return { seconds: out.seconds, version: out.torch, mode: out.mode };
  }
  return 'not installed';
}

async function main() {
  const args = process.argv.slice(2);
  const chosen = (args.includes('--cases') ? args[args.indexOf('--cases') + 1].split(',').map(Number) : Object.keys(CASES).map(Number)).filter((p) => CASES[p]);
  const withTorch = !args.includes('--no-torch');
  const config = loadConfig();
  const dir = mkdtempSync(join(tmpdir(), 'hessian-bench-'));
  const pool = new ComputePool(config.WORKERS, config.HESSIAN_BACKEND);
  const manager = new JobManager(new ResultStore(dir), pool, { maxQueued: 4, ttlSeconds: 600 });
  try {
    const backend = await pool.backend();
    console.log(`backend ${backend.backend} (${backend.dtype}), ${config.WORKERS} workers, batch ${BATCH}, tanh MLP, softmax cross-entropy from logits`);
    const rows: string[] = [];
    for (const p of chosen) {
      const sizes = CASES[p];
      const request = mlpRequest(sizes, BATCH);
      // Untimed first run: each worker's wasm memory grows to this size once; a running service has that behind it.
      await manager.forget(manager.get((await manager.finished(manager.submit(request))).id)!);
      const started = performance.now();
      const record = await manager.finished(manager.submit(request));
      const seconds = (performance.now() - started) / 1000;
      if (record.status !== 'succeeded') throw new Error(`job failed: ${record.error?.message}`);
      const gflops = matmulFlops(sizes, BATCH) / seconds / 1e9;
      const torch = withTorch ? torchSeconds(request, config.WORKERS) : 'skipped';
      const torchCell = typeof torch === 'string' ? torch : `${torch.seconds.toFixed(2)} s (torch ${torch.version}, ${torch.mode})`;
      const ratio = typeof torch === 'string' ? 'n/a' : `${(torch.seconds / seconds).toFixed(2)}x`;
      rows.push(`| ${sizes.join('-')} | ${record.size} | ${seconds.toFixed(2)} s | ${gflops.toFixed(1)} | ${backend.backend} | ${torchCell} | ${ratio} |`);
      console.log(rows[rows.length - 1]);
      await manager.forget(manager.get(record.id)!);
    }
    console.log('\n| MLP | P | full Hessian (service path) | GFLOP/s | backend | torch.autograd.functional.hessian | torch time / ours |');
    console.log('|---|---|---|---|---|---|---|');
    for (const row of rows) console.log(row);
  } finally {
    await pool.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
