/**
 * Load from large bodies, for test/api.bigbody.test.ts and measure-bodies.ts: each piece runs in a child
 * process, so that the process that times /health neither sends 32 MiB nor collects the garbage of
 * building it. Loopback servers only.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/** Runs `code` (CommonJS) with `args` in a child process; resolves with its exit status and stdout. */
async function child(code: string, args: string[], stdin?: (input: NodeJS.WritableStream) => void): Promise<{ status: number; out: string }> {
  const process_ = spawn(process.execPath, ['-e', code, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  process_.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stdin?.(process_.stdin);
  const [status] = (await once(process_, 'exit')) as [number];
  return { status, out };
}

/** A linear 40 -> 1 layer under MSE with `batch` rows of 40 five-decimal numbers (about 353 bytes a row) in `file`. */
export async function writeBigBody(file: string, batch: number): Promise<void> {
  const code = `let s = 5; const random = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    const value = () => (random() * 2 - 1).toFixed(5);
    const rows = Array.from({ length: ${batch} }, () => '[' + Array.from({ length: 40 }, value).join(',') + ']');
    const targets = Array.from({ length: ${batch} }, () => '[' + value() + ']');
    require('fs').writeFileSync(process.argv[1], '{"model":{"inputShape":[40],"layers":[{"type":"dense","units":1}]},"loss":"meanSquaredError","data":{"x":[' + rows.join(',') + '],"y":[' + targets.join(',') + ']}}');`;
  const { status } = await child(code, [file]);
  if (status !== 0) throw new Error(`writing the body failed (exit ${status})`);
}

/**
 * Our JSON model of one dense layer `inputs` -> `units` with its kernel written out as nested arrays
 * of two-decimal numbers (about 5.5 bytes a weight: many values for its bytes, the slowest to parse),
 * as a model upload {"model": ...} in `file`.
 */
export async function writeBigModel(file: string, inputs: number, units: number): Promise<void> {
  const code = `let s = 7; const random = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    const value = () => (random() * 2 - 1).toFixed(2);
    const rows = Array.from({ length: ${inputs} }, () => '[' + Array.from({ length: ${units} }, value).join(',') + ']');
    require('fs').writeFileSync(process.argv[1], '{"model":{"inputShape":[${inputs}],"layers":[{"type":"dense","units":${units},"activation":"tanh","kernel":[' + rows.join(',') + ']}]}}');`;
  const { status } = await child(code, [file]);
  if (status !== 0) throw new Error(`writing the model failed (exit ${status})`);
}

/** POSTs `file` as JSON to `url`; resolves with the status and the answer parsed. */
export async function postFile(url: string, file: string): Promise<{ status: number; body: any }> {
  const code = `fetch(process.argv[1], { method: 'POST', headers: { 'content-type': 'application/json' }, body: require('fs').readFileSync(process.argv[2]) })
    .then(async (res) => console.log(JSON.stringify({ status: res.status, body: await res.json() })))`;
  return JSON.parse((await child(code, [url, file])).out) as { status: number; body: any };
}

export interface Latencies {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export const showLatencies = (m: Latencies) => `${m.count} calls, p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms, max ${m.max.toFixed(1)} ms`;

/**
 * Latencies of `${base}/health` called every 10 ms (open loop: a main thread held for T ms delays T/10
 * calls), for `ms` or, with no `ms`, until `stop` is called; a failed call counts as 1e9 ms.
 */
export function sampleHealth(base: string, ms?: number): { stop: () => void; result: Promise<Latencies> } {
  const code = `const [base, ms] = [process.argv[1], Number(process.argv[2])];
    let stopped = false; process.stdin.on('data', () => (stopped = true)).on('end', () => (stopped = true));
    (async () => {
      const started = performance.now(), calls = [];
      for (let i = 0; i < 6000 && !stopped && !(ms > 0 && performance.now() - started > ms); i++) {
        const t = performance.now();
        calls.push(fetch(base + '/health').then((res) => (res.status === 200 ? performance.now() - t : 1e9), () => 1e9));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const sorted = (await Promise.all(calls)).sort((a, b) => a - b);
      const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
      console.log(JSON.stringify({ count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] }));
      process.exit(0);
    })();`;
  let input: NodeJS.WritableStream | undefined;
  const result = child(code, [base, String(ms ?? 0)], (stdin) => (input = stdin)).then(({ out }) => JSON.parse(out) as Latencies);
  return { stop: () => input?.end('stop'), result };
}

/** /health just before, while `action` runs and just after, with the highest load average seen. */
export interface HealthAround<T> {
  before: Latencies;
  during: Latencies;
  after: Latencies;
  load: number;
  result: T;
}

export async function healthAround<T>(base: string, action: () => Promise<T>): Promise<HealthAround<T>> {
  const loadBefore = loadavg()[0];
  const before = await sampleHealth(base, 3000).result;
  const sampling = sampleHealth(base);
  await new Promise((resolve) => setTimeout(resolve, 200)); // the sampler is running
  const result = await action();
  sampling.stop();
  const during = await sampling.result;
  const after = await sampleHealth(base, 2000).result;
  return { before, during, after, load: Math.max(loadBefore, loadavg()[0]), result };
}

/** VmRSS and VmHWM (peak) of a process, in MiB; null where /proc is not there. */
export function memoryMiB(pid: number): { rss: number; peak: number } | null {
  const file = `/proc/${pid}/status`;
  if (!existsSync(file)) return null;
  const status = readFileSync(file, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)![1]);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}
