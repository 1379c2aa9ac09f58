/**
 * `npm run bench`: full Hessians of tanh MLPs (batch 256, softmax cross-entropy from logits) by this
 * service on each installed backend, in one child process per backend and mode (HESSIAN_BACKEND set
 * per child): the service's own path (job manager, worker pool, result file) and end to end over HTTP
 * on loopback with the float32 answer. Beside it, in the same run, JAX jax.jit(jax.hessian) and
 * torch.func.hessian on the same weights (scripts/peer_hessian.py) when a python has them, and the
 * README's 2x2 request under autocannon (concurrency 10, a few seconds). Every time is the best of
 * `--runs` after one untimed run. Prints the load average, times, ratios, GFLOP/s and peak RSS.
 *
 * Usage: node dist/bench/run.js [--cases 1507,6154,11878,19158] [--backends tensorflow,wasm] [--no-lenet]
 *   [--python /path/to/python] [--no-peers] [--peer-max-p 12000] [--runs 2] [--small-seconds 5]
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { EXAMPLE_REQUEST } from '../schemas/examples.js';
import type { ValidatedRequest } from '../schemas/model.js';
import { BATCH, CASES, executedFlops, mlpRequest, modelFlops } from './cases.js';
import type { ChildMessage, ParentMessage } from './child.js';

interface Options {
  cases: number[];
  backends: string[];
  python: string | null;
  peers: boolean;
  peerMaxP: number;
  runs: number;
  smallSeconds: number;
  /** Also the convolutional case (lenet.ts), per backend; --no-lenet skips it (minutes on wasm). */
  lenet: boolean;
}

function parseOptions(args: string[]): Options {
  const value = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const list = (name: string) => value(name)?.split(',').filter(Boolean);
  return {
    cases: (list('--cases')?.map(Number) ?? Object.keys(CASES).map(Number)).filter((p) => CASES[p]),
    backends: list('--backends') ?? installedBackends(),
    python: value('--python') ?? null,
    peers: !args.includes('--no-peers'),
    peerMaxP: Number(value('--peer-max-p') ?? 12000),
    runs: Math.max(1, Number(value('--runs') ?? 2)),
    smallSeconds: Math.max(1, Number(value('--small-seconds') ?? 5)),
    lenet: !args.includes('--no-lenet'),
  };
}

/** The native backend when its optional package is installed, then wasm (cpu only when asked for). */
function installedBackends(): string[] {
  const require = createRequire(import.meta.url);
  try {
    require.resolve('@tensorflow/tfjs-node');
    return ['tensorflow', 'wasm'];
  } catch {
    return ['wasm'];
  }
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const seconds = (s: number | null | undefined) => (s == null ? 'n/a' : `${s.toFixed(2)} s`);
const ratio = (peer: number | null | undefined, ours: number | null | undefined) => (peer && ours ? `${(peer / ours).toFixed(2)}x` : 'n/a');
const gflops = (flops: number, s: number | null | undefined) => (s ? (flops / s / 1e9).toFixed(1) : 'n/a');

/** A service child process on one backend; resolves with its first message. */
function startChild(mode: 'server' | 'direct', backend: string): Promise<{ child: ChildProcess; first: ParentMessage }> {
  const child = fork(fileURLToPath(new URL('./child.js', import.meta.url)), [mode], {
    env: { ...process.env, HESSIAN_BACKEND: backend },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (first: ParentMessage) => resolve({ child, first }));
    child.once('exit', (code) => reject(new Error(`the ${mode} child on ${backend} exited (${code}) before it was ready`)));
  });
}

function ask(child: ChildProcess, message: ChildMessage): Promise<ParentMessage> {
  return new Promise((resolve) => {
    child.once('message', resolve);
    child.send(message);
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.disconnect();
  });
}

/** Best of `runs` timed calls after one untimed one. */
async function best(runs: number, once: () => Promise<number>): Promise<number> {
  await once();
  let fastest = Infinity;
  for (let r = 0; r < runs; r++) fastest = Math.min(fastest, await once());
  return fastest;
}

/**
 * POST /v1/hessian for the raw float32 answer, read as it streams (a P = 20000 answer is 1.6 GB and
 * is not kept): the seconds until its last byte, and the trace of the matrix, to check against the peers.
 */
function httpHessian(port: number, body: string, size: number): Promise<{ seconds: number; trace: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/v1/hessian', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/octet-stream' } },
      (res) => {
        let offset = 0; // bytes seen before this chunk
        let trace = 0;
        const diagonal = Buffer.alloc(4); // the diagonal float being read, which may straddle two chunks
        let pending = 0; // its bytes read so far
        res.on('data', (chunk: Buffer) => {
          let position = 0;
          if (pending) {
            const take = Math.min(4 - pending, chunk.length);
            chunk.copy(diagonal, pending, 0, take);
            pending += take;
            position = take;
            if (pending < 4) return void (offset += chunk.length);
            trace += diagonal.readFloatLE(0);
            pending = 0;
          }
          // Jump from diagonal to diagonal: float i*(P+1) holds H[i][i].
          for (;;) {
            const index = Math.ceil((offset + position) / 4 / (size + 1)) * (size + 1);
            position = index * 4 - offset;
            if (position >= chunk.length || index >= size * size) break;
            const take = Math.min(4, chunk.length - position);
            chunk.copy(diagonal, 0, position, position + take);
            if (take === 4) trace += diagonal.readFloatLE(0);
            else pending = take;
            position += 4;
          }
          offset += chunk.length;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
          if (offset !== size * size * 4) return reject(new Error(`answer of ${offset} bytes, expected ${size * size * 4}`));
          resolve({ seconds: (performance.now() - started) / 1000, trace });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface PeerResult {
  seconds: number;
  version: string;
  mode: string;
  trace: number;
}

/** The first python (--python, python3, /usr/bin/python3) that imports the peer's module. */
function pythonFor(peer: string, preferred: string | null): string | null {
  const module = peer === 'jax' ? 'jax' : 'torch';
  for (const python of preferred ? [preferred] : ['python3', '/usr/bin/python3']) {
    if (spawnSync(python, ['-c', `import ${module}`], { encoding: 'utf8' }).status === 0) return python;
  }
  return null;
}

function runPeer(peer: string, python: string, request: ValidatedRequest, runs: number): PeerResult | string {
  const script = fileURLToPath(new URL('../../scripts/peer_hessian.py', import.meta.url));
  // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, set on some machines here for old OpenBLAS builds, slow a current one.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const run = spawnSync(python, [script, peer, '2', String(runs)], { input: JSON.stringify(request), encoding: 'utf8', timeout: 1_800_000, maxBuffer: 1 << 20, env });
  if (run.status !== 0) return `failed: ${(run.stderr || run.error?.message || '').trim().split('\n').pop()}`;
  return JSON.parse(run.stdout) as PeerResult;
}

/**
 * The README's 2x2 request under autocannon on loopback: concurrency 10 for a bounded time; with the
 * backend that computed it (`js`: inline on the HTTP thread, see INLINE_MAX_FLOPS; else the small
 * lane's, SMALL_LANE_BACKEND, whatever the pool's).
 */
async function smallRequests(port: number, durationSeconds: number) {
  const body = JSON.stringify(EXAMPLE_REQUEST);
  const options = { url: `http://127.0.0.1:${port}/v1/hessian`, method: 'POST' as const, headers: { 'content-type': 'application/json' }, body, connections: 10 };
  const answer = await fetch(options.url, { method: 'POST', headers: options.headers, body });
  const { meta } = (await answer.json()) as { meta: { backend: string } };
  await autocannon({ ...options, duration: 1 }); // warm-up
  const result = await autocannon({ ...options, duration: durationSeconds });
  return {
    laneBackend: meta.backend,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    total: result.requests.total,
  };
}

interface Row {
  sizes: number[];
  size: number;
  backend: string;
  method: string;
  direct: number | null;
  http: number | null;
  trace: number | null;
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  console.log(`load average at start: ${load()}`);
  console.log(`batch ${BATCH}, tanh MLPs, softmax cross-entropy from logits, float32; backends: ${options.backends.join(', ')}; best of ${options.runs} after one untimed run`);
  const requests = new Map(options.cases.map((p) => [p, mlpRequest(CASES[p], BATCH)]));

  const peers = new Map<number, Record<string, PeerResult | string>>();
  if (options.peers) {
    const pythons = Object.fromEntries(['jax', 'torch'].map((peer) => [peer, pythonFor(peer, options.python)]));
    for (const [peer, python] of Object.entries(pythons)) {
      if (!python) console.log(`${peer}: skipped, no python with ${peer === 'jax' ? 'jax' : 'torch'} (python3 -m pip install jax jaxlib torch, or --python PATH)`);
    }
    for (const p of options.cases) {
      const results: Record<string, PeerResult | string> = {};
      for (const [peer, python] of Object.entries(pythons)) {
        if (!python) results[peer] = 'not installed';
        else if (p > options.peerMaxP) results[peer] = `skipped (P > ${options.peerMaxP})`;
        else results[peer] = runPeer(peer, python, requests.get(p)!, options.runs);
        const r = results[peer];
        console.log(`P=${p} ${peer}: ${typeof r === 'string' ? r : `${seconds(r.seconds)} (${r.mode}, ${r.version})`}   load ${load()}`);
      }
      peers.set(p, results);
    }
  }

  const rows: Row[] = [];
  const rss: string[] = [];
  const small = new Map<string, Awaited<ReturnType<typeof smallRequests>>>();
  for (const backend of options.backends) {
    const direct = await startChild('direct', backend);
    if (direct.first.kind !== 'ready' || direct.first.backend !== backend) {
      console.log(`${backend}: skipped, the worker loaded ${'backend' in direct.first ? direct.first.backend : '?'} instead`);
      await stopChild(direct.child);
      continue;
    }
    const byCase = new Map<number, Row>();
    for (const p of options.cases) {
      let method = '?';
      const time = await best(options.runs, async () => {
        const answer = await ask(direct.child, { kind: 'direct', request: requests.get(p)! });
        if (answer.kind !== 'timed') throw new Error(`P=${p} on ${backend}: ${answer.kind === 'failed' ? answer.message : answer.kind}`);
        method = answer.method;
        return answer.seconds;
      });
      const row: Row = { sizes: CASES[p], size: p, backend, method, direct: time, http: null, trace: null };
      byCase.set(p, row);
      rows.push(row);
      console.log(`P=${p} ${backend} service path (${method}): ${seconds(time)}   load ${load()}`);
    }
    rss.push(`${backend} service path: ${((await ask(direct.child, { kind: 'rss' })) as { maxRssMb: number }).maxRssMb.toFixed(0)} MB`);
    await stopChild(direct.child);

    const server = await startChild('server', backend);
    const port = (server.first as { port: number }).port;
    for (const p of options.cases) {
      const body = JSON.stringify(requests.get(p));
      let trace = 0;
      const time = await best(options.runs, async () => {
        const answer = await httpHessian(port, body, p);
        trace = answer.trace;
        return answer.seconds;
      });
      Object.assign(byCase.get(p)!, { http: time, trace });
      console.log(`P=${p} ${backend} HTTP, float32 answer: ${seconds(time)}   load ${load()}`);
    }
    const lane = await smallRequests(port, options.smallSeconds);
    small.set(backend, lane);
    console.log(`2x2 request, server on ${backend} (computed on ${lane.laneBackend}), concurrency 10: ${lane.requestsPerSecond.toFixed(0)} req/s, p99 ${lane.p99} ms   load ${load()}`);
    rss.push(`${backend} HTTP server: ${((await ask(server.child, { kind: 'rss' })) as { maxRssMb: number }).maxRssMb.toFixed(0)} MB`);
    await stopChild(server.child);
  }

  console.log(`\nload average at end: ${load()}`);
  console.log('\n| MLP | P | backend | path | service path | HTTP, float32 answer | GFLOP/s B·P² (executed) | JAX jit(hessian) | JAX / ours (HTTP) | torch.func.hessian | torch / ours (HTTP) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    const peer = peers.get(row.size) ?? {};
    const cell = (name: string) => {
      const r = peer[name];
      return r === undefined ? 'n/a' : typeof r === 'string' ? r : seconds(r.seconds);
    };
    const time = (name: string) => (typeof peer[name] === 'object' ? (peer[name] as PeerResult).seconds : null);
    const { flops } = executedFlops(requests.get(row.size)!);
    const model = modelFlops(row.size, BATCH);
    console.log(
      `| ${row.sizes.join('-')} | ${row.size} | ${row.backend} | ${row.method} | ${seconds(row.direct)} | ${seconds(row.http)} | ${gflops(model, row.direct)} (${gflops(flops, row.direct)}) | ${cell('jax')} | ${ratio(time('jax'), row.direct)} (${ratio(time('jax'), row.http)}) | ${cell('torch')} | ${ratio(time('torch'), row.direct)} (${ratio(time('torch'), row.http)}) |`,
    );
  }
  const checks = rows.flatMap((row) =>
    Object.entries(peers.get(row.size) ?? {}).flatMap(([name, r]) =>
      typeof r === 'object' && row.trace !== null ? [`P=${row.size} ${row.backend} vs ${name}: trace ${row.trace.toPrecision(6)} vs ${r.trace.toPrecision(6)} (relative ${(Math.abs(row.trace - r.trace) / Math.abs(r.trace)).toExponential(1)})`] : [],
    ),
  );
  if (checks.length) console.log(`\nsame matrix (trace of H):\n${checks.join('\n')}`);
  console.log(`\npeak RSS: ${rss.join('; ')}`);
  for (const [backend, lane] of small) {
    console.log(
      `\n2x2 request (README), autocannon, concurrency 10, ${options.smallSeconds} s, server on ${backend}, computed on ${lane.laneBackend}: ${lane.requestsPerSecond.toFixed(0)} req/s, p50 ${lane.p50} ms, p99 ${lane.p99} ms, ${lane.total} requests, ${lane.errors} errors or non-2xx`,
    );
  }
  if (options.lenet) {
    // The convolutional case: the graph engine's full Hessian of a LeNet-like CNN, in a child per backend.
    for (const backend of options.backends) {
      console.log(`\nLeNet-like CNN (28x28x1, batch 128, P = 11126) on ${backend}:`);
      const script = fileURLToPath(new URL('./lenet.js', import.meta.url));
      spawnSync(process.execPath, [script], { stdio: 'inherit', env: { ...process.env, HESSIAN_BACKEND: backend } });
    }
  }
}

await main();
