/**
 * Clients that go away or stall mid-body (issue 7), against the server process: a client that sends
 * half of a body (below and above BODY_THREAD_BYTES) and closes its socket leaves no crash, no job
 * record, no body thread and no memory behind, and the next requests are answered correctly; a client
 * that stalls mid-body is cut off by REQUEST_TIMEOUT_SECONDS (408, connection closed) and its body
 * thread ends. Loopback only; every wait bounded.
 */
import { readdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { memoryMiB } from '../src/scripts/body-load.js';
import { eventually, expectJsonMatchesFixture, expectMatchesLinearReference, freshDir, linearBody, linearReference, removeDir, sleep } from './api-helpers.js';
import { fixtures } from './helpers.js';
import { serverProcesses } from './server-process.js';

const start = serverProcesses();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await removeDir(dir);
});

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const REQUEST_TIMEOUT_SECONDS = 2;

/** A raw HTTP/1.1 POST that announces all of `body` but sends only its first `sent` bytes; what the server answers, and when it closes. */
function partialPost(base: string, path: string, body: Buffer, sent: number) {
  const { hostname, port } = new URL(base);
  const socket: Socket = connect(Number(port), hostname);
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  socket.on('error', () => undefined); // a reset after we destroy it, or the server's close
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  socket.write(`POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  const written = new Promise<void>((resolve) => socket.write(body.subarray(0, sent), () => resolve()));
  return { socket, written, closed, answer: () => answer };
}

it('half a body then a closed socket, below and above BODY_THREAD_BYTES: no crash, no record, no thread or memory left; then a stalled body is cut off with 408', async () => {
  const dir = await freshDir();
  dirs.push(dir);
  const server = await start(dir, { REQUEST_TIMEOUT_SECONDS: String(REQUEST_TIMEOUT_SECONDS), SHUTDOWN_GRACE_SECONDS: '0' });
  const metrics = async () => (await fetch(`${server.base}/metrics`)).text();
  const gauge = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await metrics())![1]);
  const bodyThreads = () => gauge('hessian_body_threads');

  const bigRequest = linearBody(12_000); // some 4 MB of JSON: over BODY_THREAD_BYTES (1 MiB)
  const big = Buffer.from(JSON.stringify(bigRequest));
  const small = Buffer.from(JSON.stringify(linearBody(1000))); // some 330 KB: under it
  expect(big.length).toBeGreaterThan(2 ** 20);
  expect(small.length).toBeLessThan(2 ** 20);
  const reference = linearReference(bigRequest);
  const expectBigAnswered = async () => {
    const res = await fetch(`${server.base}/v1/hessian`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(res.status).toBe(200);
    expectMatchesLinearReference((await res.json()) as any, reference);
  };

  // Warm: one big body whole (the body thread's modules loaded once, the heap at its working size).
  await expectBigAnswered();
  expect(await bodyThreads()).toBe(0);
  const before = memoryMiB(server.child.pid!);

  const rounds = 5; // more than the four body threads that may be alive at once: a leaked slot would stall the last ones
  for (let round = 0; round < rounds; round++) {
    for (const path of ['/v1/hessian', '/v1/jobs', '/v1/curvature']) {
      const under = partialPost(server.base, path, small, small.length >> 1);
      await under.written;
      const over = partialPost(server.base, path, big, big.length >> 1);
      await over.written;
      await eventually(async () => (await bodyThreads()) === 1, 30_000); // its thread receives the chunks
      under.socket.destroy();
      over.socket.destroy();
      await eventually(async () => (await bodyThreads()) === 0, 30_000);
    }
  }
  expect(server.child.exitCode).toBeNull();
  // No job record: nothing in RESULTS_DIR, no job known.
  expect(await readdir(dir)).toEqual([]);
  expect(await gauge('hessian_queue_depth')).toBe(0);
  expect(/^hessian_jobs\{status="(queued|running)"\} [1-9]/m.test(await metrics())).toBe(false);

  const after = memoryMiB(server.child.pid!);
  if (before && after) {
    console.log(`RSS before ${before.rss.toFixed(0)} MiB, after ${rounds * 3} bodies cut off above and below BODY_THREAD_BYTES ${after.rss.toFixed(0)} MiB (peak ${after.peak.toFixed(0)} MiB)`);
    // Each cut-off body held a thread (some 80 MiB of modules and heap) and 2 MB of chunks while it lived.
    expect(after.rss - before.rss).toBeLessThan(128);
  }

  // The next requests: the seed example, and a big body through a body thread.
  const seedAnswer = await fetch(`${server.base}/v1/hessian`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(seed.request) });
  expect(seedAnswer.status).toBe(200);
  expectJsonMatchesFixture(await seedAnswer.json(), seed);
  await expectBigAnswered();

  // Stalled mid-body, above and below BODY_THREAD_BYTES: 408 and the connection closed after
  // REQUEST_TIMEOUT_SECONDS (Node checks every tenth of it); the body thread ends with it.
  const started = performance.now();
  const stalled = [partialPost(server.base, '/v1/jobs', big, big.length >> 1), partialPost(server.base, '/v1/hessian', small, small.length >> 1)];
  await Promise.all(stalled.map((s) => s.written));
  await eventually(async () => (await bodyThreads()) === 1, 30_000);
  const closedAt = await Promise.race([Promise.all(stalled.map((s) => s.closed)), sleep(60_000).then(() => null)]);
  expect(closedAt, `the server did not close a stalled request: ${stalled.map((s) => `${s.socket.destroyed ? 'closed' : 'open'} ${JSON.stringify(s.answer().slice(0, 200))}`).join('; ')}`).not.toBeNull();
  for (const [i, at] of closedAt!.entries()) {
    expect(stalled[i].answer()).toMatch(/^HTTP\/1\.1 408 /);
    expect(at - started).toBeGreaterThan(REQUEST_TIMEOUT_SECONDS * 1000 - 100);
    expect(at - started).toBeLessThan(30_000); // long before Node's 60 s headers timeout: REQUEST_TIMEOUT_SECONDS cut it
  }
  await eventually(async () => (await bodyThreads()) === 0, 30_000);
  expect(await readdir(dir)).toEqual([]);
  await expectBigAnswered();
  expect(server.child.exitCode).toBeNull();
  server.child.kill('SIGKILL');
}, 300_000);
