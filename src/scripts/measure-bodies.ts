/**
 * Measures, against a running server (loopback), what issue 7 asks about large bodies and small work:
 * 1. /health latency alone, while a 32 MiB JSON body is received, parsed and validated, and while a
 *    30 MiB JSON model upload (nested arrays) is parsed, validated and imported;
 * 2. the README's 2x2 request alone and behind a long job (P = 6154, batch --long-batch): p50 and p99;
 * 3. the server's RSS and peak (VmHWM) while big bodies queue behind that job.
 * Usage: node dist/scripts/measure-bodies.js --base http://127.0.0.1:3000 --pid <server pid> [--queued 8] [--long-batch 8192]
 * The pid is for /proc/<pid>/status (Linux). Bodies are written, posted and /health timed by child
 * processes (body-load.ts). Prints the load average with each figure.
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../compute/initializers.js';
import { EXAMPLE_REQUEST } from '../schemas/examples.js';
import { memoryMiB, postFile, sampleHealth, showLatencies, writeBigBody, writeBigModel } from './body-load.js';

const { values: args } = parseArgs({
  options: { base: { type: 'string' }, pid: { type: 'string' }, queued: { type: 'string', default: '8' }, 'long-batch': { type: 'string', default: '8192' } },
});
if (!args.base || !args.pid) throw new Error('usage: measure-bodies --base http://127.0.0.1:3000 --pid <server pid> [--queued 8] [--long-batch 8192]');
const base = args.base;
const MiB = 2 ** 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const load = () => `load ${loadavg()[0].toFixed(2)}`;

const memory = () => {
  const measured = memoryMiB(Number(args.pid));
  return measured ? `RSS ${measured.rss.toFixed(0)} MiB, peak ${measured.peak.toFixed(0)} MiB` : 'no /proc here';
};

/** The README's 2x2 request `count` times, one after another (50 ms apart): p50, p99 and max. */
async function twoByTwo(count: number): Promise<string> {
  const body = JSON.stringify(EXAMPLE_REQUEST);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const res = await fetch(`${base}/v1/hessian`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`the 2x2 request answered ${res.status}`);
    times.push(performance.now() - started);
    await sleep(50);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(count - 1, Math.floor(count * q))];
  return `${count} requests, p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${times[count - 1].toFixed(1)} ms`;
}

const post = async (path: string, body: unknown) =>
  (await (await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as { id: string; size: number; status?: string };

const dir = await mkdtemp(join(tmpdir(), 'measure-bodies-'));
try {
  const file = join(dir, 'body.json');
  await writeBigBody(file, 94_500);
  const bytes = statSync(file).size;

  console.log(`/health alone: ${showLatencies(await sampleHealth(base, 3000).result)} (${load()})`);
  const during = sampleHealth(base);
  await sleep(200);
  const first = await postFile(`${base}/v1/jobs`, file);
  during.stop();
  console.log(`/health during a ${(bytes / MiB).toFixed(1)} MiB body (${first.status}): ${showLatencies(await during.result)} (${load()})`);
  await fetch(`${base}/v1/jobs/${first.body.id}`, { method: 'DELETE' });

  const model = join(dir, 'model.json');
  await writeBigModel(model, 1000, 5600);
  const modelBytes = statSync(model).size;
  const uploading = sampleHealth(base);
  await sleep(200);
  const uploaded = await postFile(`${base}/v1/models`, model);
  uploading.stop();
  console.log(`/health during a ${(modelBytes / MiB).toFixed(1)} MiB JSON model upload (${uploaded.status}): ${showLatencies(await uploading.result)} (${load()})`);
  if (uploaded.status === 201) await fetch(`${base}/v1/models/${uploaded.body.id}`, { method: 'DELETE' });

  console.log(`2x2 alone: ${await twoByTwo(100)} (${load()})`);
  // A 20-64-64-10 tanh MLP (P = 6154, seeded weights) under softmax cross-entropy: the bench's case, at a batch that keeps both workers busy.
  const batch = Number(args['long-batch']);
  const random = mulberry32(11);
  const long = {
    model: { inputShape: [20], seed: 7, layers: [64, 64, 10].map((units, l) => ({ type: 'dense', units, activation: l === 2 ? 'linear' : 'tanh' })) },
    loss: { type: 'categoricalCrossentropy', fromLogits: true },
    data: { x: Array.from({ length: batch }, () => Array.from({ length: 20 }, () => random() * 2 - 1)), y: Array.from({ length: batch }, (_, b) => Array.from({ length: 10 }, (_, c) => (c === b % 10 ? 1 : 0))) },
  };
  const job = await post('/v1/jobs', long);
  await sleep(2000);
  const behind = await twoByTwo(100);
  const status = ((await (await fetch(`${base}/v1/jobs/${job.id}`)).json()) as { status: string; progress: number });
  const valid = status.status === 'running' ? 'the job still running' : `NOT VALID: the job was ${status.status} by the end, use a larger --long-batch`;
  console.log(`2x2 behind a running job of P = ${job.size} (batch ${batch}): ${behind} (${load()}; ${valid}, progress ${status.progress.toFixed(2)})`);
  console.log(`with that job running: ${memory()}`);
  for (let i = 1; i <= Number(args.queued); i++) {
    const answer = await postFile(`${base}/v1/jobs`, file);
    console.log(`queued body ${i}: ${answer.status}; ${memory()} (${load()})`);
  }
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(metrics)?.[1]);
  console.log(`main thread: heap used ${(metric('nodejs_heap_size_used_bytes') / MiB).toFixed(0)} MiB, external ${(metric('nodejs_external_memory_bytes') / MiB).toFixed(0)} MiB; queue depth ${metric('hessian_queue_depth')}`);
  await fetch(`${base}/v1/jobs/${job.id}`, { method: 'DELETE' });
} finally {
  await rm(dir, { recursive: true, force: true });
}
