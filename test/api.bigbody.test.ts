/**
 * 32 MiB bodies against the real server process (issue 7): /health keeps answering while one is
 * received, parsed and validated (on its body thread), and such bodies queued behind a long job hold
 * their typed arrays' bytes, within MAX_QUEUED_BYTES, with the process's memory bounded and the process
 * alive. Loopback only; every loop bounded.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { freshDir, LARGE, mlpRequest, removeDir, sleep } from './api-helpers.js';
import { serverProcesses } from './server-process.js';

const start = serverProcesses();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await removeDir(dir);
});

const MiB = 2 ** 20;
/** Limits of the server under test: two such bodies fit in the queue, a third does not. */
const QUEUED_BYTES = 40 * MiB;
const THREAD_HEAP_MB = 512;

/**
 * Writes a linear 40 -> 1 model under MSE with `batch` rows of 40 numbers of 8 characters (about 353
 * bytes a row) to `file`, in a child process: building it here would leave this process, which times
 * /health, hundreds of MiB of garbage to collect while it measures.
 */
async function writeBigBody(file: string, batch: number): Promise<void> {
  const code = `let s = 5; const random = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    const value = () => (random() * 2 - 1).toFixed(5);
    const rows = Array.from({ length: ${batch} }, () => '[' + Array.from({ length: 40 }, value).join(',') + ']');
    const targets = Array.from({ length: ${batch} }, () => '[' + value() + ']');
    require('fs').writeFileSync(process.argv[1], '{"model":{"inputShape":[40],"layers":[{"type":"dense","units":1}]},"loss":"meanSquaredError","data":{"x":[' + rows.join(',') + '],"y":[' + targets.join(',') + ']}}');`;
  const child = spawn(process.execPath, ['-e', code, file], { stdio: 'inherit' });
  const [status] = await once(child, 'exit');
  expect(status).toBe(0);
}

/** VmRSS and VmHWM (peak) of a process, in MiB; null where /proc is not there. */
function memoryMiB(pid: number): { rss: number; peak: number } | null {
  const file = `/proc/${pid}/status`;
  if (!existsSync(file)) return null;
  const status = readFileSync(file, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)![1]);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

interface Latencies {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Latencies of /health called every 10 ms (open loop: a main thread held for T ms delays T/10 calls), for
 * `ms` or, with no `ms`, until `stop` is called; taken by a child process, so that nothing this process
 * does (it is a test runner's) is in the figures.
 */
function sampleHealth(base: string, ms?: number): { stop: () => void; result: Promise<Latencies> } {
  const code = `const [base, ms] = [process.argv[1], Number(process.argv[2])];
    let stopped = false; process.stdin.on('data', () => (stopped = true)).on('end', () => (stopped = true));
    (async () => {
      const started = performance.now(), calls = [];
      for (let i = 0; i < 6000 && !stopped && !(ms > 0 && performance.now() - started > ms); i++) {
        const t = performance.now();
        calls.push(fetch(base + '/health').then((res) => (res.status === 200 ? performance.now() - t : Infinity)));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const sorted = (await Promise.all(calls)).sort((a, b) => a - b);
      const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
      console.log(JSON.stringify({ count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] }));
      process.exit(0);
    })();`;
  const child = spawn(process.execPath, ['-e', code, base, String(ms ?? 0)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const result = once(child, 'exit').then(() => JSON.parse(out) as Latencies);
  return { stop: () => child.stdin.end('stop'), result };
}
const show = (m: Latencies) => `${m.count} calls, p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms, max ${m.max.toFixed(1)} ms`;

it('/health answers within 100 ms (p99) while a 32 MiB body is handled; queued big bodies stay within MAX_QUEUED_BYTES and bounded memory', async () => {
  const dir = await freshDir();
  dirs.push(dir);
  const server = await start(dir, { SHUTDOWN_GRACE_SECONDS: '0', MAX_QUEUED_BYTES: String(QUEUED_BYTES), BODY_THREAD_HEAP_MB: String(THREAD_HEAP_MB) });
  const file = join(dir, 'body.json');
  await writeBigBody(file, 94_500);
  const bodyBytes = statSync(file).size;
  expect(bodyBytes).toBeGreaterThan(31.5 * MiB);
  expect(bodyBytes).toBeLessThan(32 * MiB);

  // Posted by a child process, so that sending 32 MiB does not hold this process's event loop (which times /health).
  const poster = `fetch(process.argv[1], { method: 'POST', headers: { 'content-type': 'application/json' }, body: require('fs').readFileSync(process.argv[2]) })
    .then(async (res) => console.log(JSON.stringify({ status: res.status, body: await res.json() })))`;
  const post = async () => {
    const child = spawn(process.execPath, ['-e', poster, `${server.base}/v1/jobs`, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await once(child, 'exit');
    return JSON.parse(out) as { status: number; body: any };
  };

  // The machine's own lag (this 2-core machine is often shared) just before and just after, then during a
  // big body. The 100 ms bound holds the body's handling to account only on a quiet machine: a load average
  // under the core count and /health fast around it (on a loaded one, a garbage collection of the main
  // thread's 30 MiB heap alone took 60-120 ms); a second attempt when the first one was disturbed.
  const quietMs = 25;
  const attempts: { before: Latencies; during: Latencies; after: Latencies; load: number }[] = [];
  for (let attempt = 0; attempt < 2; attempt++) {
    const loadBefore = loadavg()[0];
    const before = await sampleHealth(server.base, 3000).result;
    const sampling = sampleHealth(server.base);
    await sleep(200); // the sampler is running
    const posted = await post();
    sampling.stop();
    const during = await sampling.result;
    expect(posted.status).toBe(202);
    await fetch(`${server.base}/v1/jobs/${posted.body.id}`, { method: 'DELETE' });
    const after = await sampleHealth(server.base, 2000).result;
    const load = Math.max(loadBefore, loadavg()[0]);
    attempts.push({ before, during, after, load });
    console.log(`load average ${load.toFixed(2)}; /health before: ${show(before)}; during a ${(bodyBytes / MiB).toFixed(1)} MiB body: ${show(during)}; after: ${show(after)}`);
    expect(during.count).toBeGreaterThanOrEqual(50);
    if (Math.max(before.p99, after.p99) < quietMs && load < availableParallelism() && during.p99 < 100) break;
  }
  const quiet = attempts.filter(({ before, after, load }) => Math.max(before.p99, after.p99) < quietMs && load < availableParallelism());
  if (quiet.length > 0) {
    expect(Math.min(...quiet.map(({ during }) => during.p99))).toBeLessThan(100);
  } else {
    // A loaded machine: its own lag is in every figure; what must not come back is the seconds-long freeze
    // of parsing on the main thread.
    console.log(`machine too loaded for the 100 ms bound (load average over ${availableParallelism()} or its own /health p99 ${quietMs} ms or more): checked no freeze only`);
    for (const { before, during } of attempts) expect(during.max).toBeLessThan(1000 + before.max);
  }

  // Big bodies queued behind a long job (minutes of work; cancelled at the end).
  const long = await (await fetch(`${server.base}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mlpRequest(LARGE.sizes, 8 * LARGE.batch)) })).json();
  await sleep(2000); // its workers reach their working size
  const before = memoryMiB(server.child.pid!);
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await post());
  const bytesEach = 94_500 * 41 * 4; // x and y as float32
  expect(answers.map((a) => a.status)).toEqual([202, 202, 429]);
  expect(answers[2].body.error).toBe('queue_full');
  expect(answers[2].body.message).toBe(`the queued requests hold ${2 * bytesEach} bytes; this one needs ${bytesEach} more and MAX_QUEUED_BYTES is ${QUEUED_BYTES}; retry later`);
  const metrics = await (await fetch(`${server.base}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(metrics)![1]);
  expect(metric('hessian_queue_depth')).toBeGreaterThanOrEqual(1);
  // The main thread holds the queued requests as typed arrays (outside its heap), not parsed nested arrays
  // (hundreds of MiB of heap each).
  const heapUsed = metric('nodejs_heap_size_used_bytes') / MiB;
  const external = metric('nodejs_external_memory_bytes') / MiB;
  console.log(`main thread: heap used ${heapUsed.toFixed(0)} MiB, external ${external.toFixed(0)} MiB (queued requests ${((2 * bytesEach) / MiB).toFixed(0)} MiB)`);
  expect(heapUsed).toBeLessThan(100);
  expect(external).toBeGreaterThan((2 * bytesEach) / MiB);
  expect(external).toBeLessThan(QUEUED_BYTES / MiB + 64);
  const after = memoryMiB(server.child.pid!);
  if (before && after) {
    console.log(`RSS before the queued bodies ${before.rss.toFixed(0)} MiB; after 2 queued + 1 refused ${after.rss.toFixed(0)} MiB; process peak ${after.peak.toFixed(0)} MiB`);
    // Held: the queued typed arrays (<= MAX_QUEUED_BYTES). Transient: one body thread's parse (its heap
    // is capped at BODY_THREAD_HEAP_MB, and it ends with its body) and a body's raw bytes. The slack is
    // for the long job's workers (their wasm heaps grow as it runs) and allocator noise.
    expect(after.peak - before.rss).toBeLessThan(THREAD_HEAP_MB + QUEUED_BYTES / MiB + 32 + 384);
    expect(after.rss - before.rss).toBeLessThan(QUEUED_BYTES / MiB + 384);
  }
  expect((await fetch(`${server.base}/health`)).status).toBe(200);
  await fetch(`${server.base}/v1/jobs/${long.id}`, { method: 'DELETE' });
  server.child.kill('SIGKILL');
}, 300_000);
