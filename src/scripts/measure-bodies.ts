/**
 * Measures, against a running server (loopback), what issue 7 asks about large bodies:
 * 1. /health latency alone and while a 32 MiB JSON body is received, parsed and validated;
 * 2. the server's RSS (and peak, VmHWM) while big bodies queue behind a long job;
 * 3. the README's 2x2 request alone and behind that long job.
 * Usage: node dist/scripts/measure-bodies.js --base http://127.0.0.1:3000 --pid <server pid> [--queued 8]
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
import { memoryMiB, postFile, sampleHealth, showLatencies, writeBigBody } from './body-load.js';

const { values: args } = parseArgs({ options: { base: { type: 'string' }, pid: { type: 'string' }, queued: { type: 'string', default: '8' } } });
if (!args.base || !args.pid) throw new Error('usage: measure-bodies --base http://127.0.0.1:3000 --pid <server pid> [--queued 8]');
const base = args.base;
const MiB = 2 ** 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const load = () => `load ${loadavg()[0].toFixed(2)}`;

const memory = () => {
  const measured = memoryMiB(Number(args.pid));
  return measured ? `RSS ${measured.rss.toFixed(0)} MiB, peak ${measured.peak.toFixed(0)} MiB` : 'no /proc here';
};

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
  return `${count} requests, p50 ${times[count >> 1].toFixed(1)} ms, max ${times[count - 1].toFixed(1)} ms`;
}

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

  console.log(`2x2 alone: ${await twoByTwo(30)} (${load()})`);
  // A 25-92-92-10 tanh MLP (P = 11,878, seeded weights), batch 2048: minutes of work on two workers.
  const random = mulberry32(11);
  const long = {
    model: { inputShape: [25], seed: 7, layers: [92, 92, 10].map((units, l) => ({ type: 'dense', units, activation: l === 2 ? 'linear' : 'tanh' })) },
    loss: { type: 'categoricalCrossentropy', fromLogits: true },
    data: { x: Array.from({ length: 2048 }, () => Array.from({ length: 25 }, () => random() * 2 - 1)), y: Array.from({ length: 2048 }, (_, b) => Array.from({ length: 10 }, (_, c) => (c === b % 10 ? 1 : 0))) },
  };
  const job = (await (await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(long) })).json()) as { id: string; size: number };
  await sleep(2000);
  console.log(`2x2 behind a running job of P = ${job.size}: ${await twoByTwo(30)} (${load()})`);
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
