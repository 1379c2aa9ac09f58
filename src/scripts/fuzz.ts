/**
 * `npm run fuzz -- --count 20000 [--seed N] [--concurrency 8] [--max-seconds 1800]`: starts the service
 * (dist/server.js) as a child process on 127.0.0.1 with a temporary RESULTS_DIR, sends it mutated
 * requests (src/scripts/fuzz-cases.ts) and fails if any answer is a 5xx, not strict JSON where JSON is
 * declared, missing, or if the server process exits during the run. Afterwards it checks that the
 * README example still gets its exact answer. The server's log goes to <RESULTS_DIR>/server.log.
 */
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EXAMPLE_REQUEST, EXAMPLE_RESPONSE } from '../schemas/examples.js';
import { runFuzz, type FuzzRequest, type FuzzResponse } from './fuzz-cases.js';

const HOST = '127.0.0.1';
const ANSWER_TIMEOUT_MS = 60_000;

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    seed: { type: 'string', default: '20261127' },
    concurrency: { type: 'string', default: '8' },
    'max-seconds': { type: 'string', default: '1800' },
  },
});
const count = Number(args.count);
const seed = Number(args.seed);
const concurrency = Number(args.concurrency);
const maxSeconds = Number(args['max-seconds']);
for (const [name, value] of Object.entries({ count, seed, concurrency, maxSeconds })) {
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
}

/** A port free on the loopback interface right now. */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = createServer().listen(0, HOST, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });

const agent = new Agent({ keepAlive: true, maxSockets: concurrency });

function send(port: number, request: FuzzRequest): Promise<FuzzResponse> {
  return new Promise((resolve, reject) => {
    const payload = request.payload === undefined ? undefined : Buffer.from(request.payload, 'utf8');
    const req = httpRequest(
      { host: HOST, port, method: request.method, path: request.url, agent, headers: { ...request.headers, ...(payload ? { 'content-length': payload.length } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(ANSWER_TIMEOUT_MS, () => req.destroy(new Error(`no answer in ${ANSWER_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function waitForReady(port: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && !exited()) {
    const ready = await send(port, { method: 'GET', url: '/ready', headers: {}, label: 'ready' }).catch(() => null);
    if (ready?.statusCode === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the server did not become ready');
}

const dir = await mkdtemp(join(tmpdir(), 'hessian-fuzz-'));
const port = await freePort();
const log = openSync(join(dir, 'server.log'), 'a');
const server = spawn(process.execPath, [new URL('../server.js', import.meta.url).pathname], {
  env: { ...process.env, HOST, PORT: String(port), RESULTS_DIR: dir, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
  stdio: ['ignore', log, log],
});
let exit: string | null = null;
server.on('exit', (code, signal) => {
  exit = `the server exited (code ${code}, signal ${signal})`;
});

let failed = false;
try {
  await waitForReady(port, () => exit !== null);
  console.log(`fuzzing http://${HOST}:${port} with ${count} requests (seed ${seed}, ${concurrency} at a time); server log ${join(dir, 'server.log')}`);
  const report = await runFuzz((request) => send(port, request), { seed, count, concurrency, deadline: Date.now() + maxSeconds * 1000 });
  console.log(`sent ${report.sent} in ${(report.elapsedMs / 1000).toFixed(1)} s; statuses ${JSON.stringify(report.statuses)}`);
  for (const { request, problem } of report.problems.slice(0, 20)) {
    console.log(`PROBLEM ${problem}\n  ${request.method} ${request.url} [${request.label}]\n  headers ${JSON.stringify(request.headers)}\n  body ${request.payload?.slice(0, 2000) ?? ''}`);
  }
  if (report.problems.length) {
    console.log(`${report.problems.length} problems`);
    failed = true;
  }
  if (report.sent < count) {
    console.log(`only ${report.sent} of ${count} requests were answered within --max-seconds ${maxSeconds}`);
    failed = true;
  }
  if (exit) throw new Error(exit);
  const check = await send(port, { method: 'POST', url: '/v1/hessian', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(EXAMPLE_REQUEST), label: 'README example' });
  const hessian = check.statusCode === 200 ? (JSON.parse(check.body.toString()).hessian as number[][]).flat() : [];
  const exact = hessian.length === 16 && hessian.every((v, i) => Math.abs(v - EXAMPLE_RESPONSE.hessian.flat()[i]) < 1e-5);
  console.log(`afterwards the README example answers ${check.statusCode}${exact ? ' with its exact Hessian' : ' WRONG'}`);
  if (!exact) failed = true;
} catch (error) {
  console.log(`FAILED: ${(error as Error).message}`);
  failed = true;
} finally {
  agent.destroy();
  if (!exit) {
    const stopped = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await stopped;
  }
  console.log(exit ?? 'the server stopped');
  if (!failed) await rm(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
