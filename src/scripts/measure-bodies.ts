/**
 * Measures, against a running server (loopback), what issue 7 asks about large bodies:
 * 1. /health latency alone and while a 32 MiB JSON body is received, parsed and validated;
 * 2. the server's RSS (and peak, VmHWM) while big bodies queue behind a long job;
 * 3. the README's 2x2 request alone and behind that long job.
 * Usage: node dist/scripts/measure-bodies.js --base http://127.0.0.1:3000 --pid <server pid> [--queued 8]
 * The pid is for /proc/<pid>/status (Linux). Bodies are posted and /health timed by child processes, so
 * that neither holds the other's event loop. Prints the load average with each figure.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../compute/initializers.js';
import { EXAMPLE_REQUEST } from '../schemas/examples.js';

const { values: args } = parseArgs({ options: { base: { type: 'string' }, pid: { type: 'string' }, queued: { type: 'string', default: '8' } } });
if (!args.base || !args.pid) throw new Error('usage: measure-bodies --base http://127.0.0.1:3000 --pid <server pid> [--queued 8]');
const base = args.base;
const MiB = 2 ** 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const load = () => `load ${loadavg()[0].toFixed(2)}`;

/** A linear 40 -> 1 layer under MSE, 94,500 rows of 40 five-decimal numbers: 31.8 MiB of JSON. */
function writeBigBody(file: string): void {
  const random = mulberry32(5);
  const value = () => (random() * 2 - 1).toFixed(5);
  const rows = Array.from({ length: 94_500 }, () => `[${Array.from({ length: 40 }, value).join(',')}]`);
  const targets = rows.map(() => `[${value()}]`);
  writeFileSync(file, `{"model":{"inputShape":[40],"layers":[{"type":"dense","units":1}]},"loss":"meanSquaredError","data":{"x":[${rows.join(',')}],"y":[${targets.join(',')}]}}`);
}

const memory = () => {
  const status = readFileSync(`/proc/${args.pid}/status`, 'utf8');
  const mib = (key: string) => (Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)![1]) / 1024).toFixed(0);
  return `RSS ${mib('VmRSS')} MiB, peak ${mib('VmHWM')} MiB`;
};

/** Posts the file from a child process; resolves with the status and the answer's text. */
async function post(file: string, path: string): Promise<{ status: number; text: string }> {
  const code = `fetch(process.argv[1], { method: 'POST', headers: { 'content-type': 'application/json' }, body: require('fs').readFileSync(process.argv[2]) })
    .then(async (res) => console.log(JSON.stringify({ status: res.status, text: await res.text() })))`;
  const child = spawn(process.execPath, ['-e', code, `${base}${path}`, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  return JSON.parse(out) as { status: number; text: string };
}

/** /health every 10 ms from a child process, for `ms` or until stopped. */
function sampleHealth(ms = 0): { stop: () => void; result: Promise<string> } {
  const code = `const [base, ms] = [process.argv[1], Number(process.argv[2])];
    let stopped = false; process.stdin.on('data', () => (stopped = true)).on('end', () => (stopped = true));
    (async () => {
      const started = performance.now(), calls = [];
      for (let i = 0; i < 6000 && !stopped && !(ms > 0 && performance.now() - started > ms); i++) {
        const t = performance.now();
        calls.push(fetch(base + '/health').then(() => performance.now() - t));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const s = (await Promise.all(calls)).sort((a, b) => a - b);
      const at = (q) => s[Math.min(s.length - 1, Math.floor(s.length * q))].toFixed(1);
      console.log(s.length + ' calls, p50 ' + at(0.5) + ' ms, p99 ' + at(0.99) + ' ms, max ' + at(1) + ' ms');
      process.exit(0);
    })();`;
  const child = spawn(process.execPath, ['-e', code, base, String(ms)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return { stop: () => child.stdin.end('stop'), result: once(child, 'exit').then(() => out.trim()) };
}

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
  writeBigBody(file);
  const bytes = readFileSync(file).length;

  console.log(`/health alone: ${await sampleHealth(3000).result} (${load()})`);
  const during = sampleHealth();
  await sleep(200);
  const first = await post(file, '/v1/jobs');
  during.stop();
  console.log(`/health during a ${(bytes / MiB).toFixed(1)} MiB body (${first.status}): ${await during.result} (${load()})`);
  await fetch(`${base}/v1/jobs/${JSON.parse(first.text).id}`, { method: 'DELETE' });

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
    const answer = await post(file, '/v1/jobs');
    console.log(`queued body ${i}: ${answer.status}; ${memory()} (${load()})`);
  }
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(metrics)?.[1]);
  console.log(`main thread: heap used ${(metric('nodejs_heap_size_used_bytes') / MiB).toFixed(0)} MiB, external ${(metric('nodejs_external_memory_bytes') / MiB).toFixed(0)} MiB; queue depth ${metric('hessian_queue_depth')}`);
  await fetch(`${base}/v1/jobs/${job.id}`, { method: 'DELETE' });
} finally {
  await rm(dir, { recursive: true, force: true });
}
