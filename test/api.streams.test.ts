/**
 * Stalled stream readers: clients that open a job's NDJSON stream and read nothing cost the server a
 * small bounded buffer each (not the matrix), and are disconnected after STREAM_WRITE_TIMEOUT_SECONDS,
 * after which their memory is back. Loopback only; every wait is bounded.
 */
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { finishedJob, MEDIUM, mlpRequest, mlpSize, sleep, useApp } from './api-helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Live memory of this process (the app runs in it): V8 heap plus buffers, after a full collection. */
function liveBytes(): number {
  gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

const READERS = 20;
const t = useApp({ STREAM_WRITE_TIMEOUT_SECONDS: 12 });

it(`${READERS} NDJSON readers that read nothing: bounded memory, /health answers, all cut off after the write timeout`, async () => {
  const P = mlpSize(MEDIUM.sizes);
  const job = await finishedJob(t, mlpRequest(MEDIUM.sizes, MEDIUM.batch));
  expect(job.status).toBe('succeeded');
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  const before = liveBytes();

  const sockets: Socket[] = [];
  const closed: Promise<void>[] = [];
  for (let i = 0; i < READERS; i++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
    socket.write(`GET /v1/jobs/${job.id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/x-ndjson\r\n\r\n`);
    socket.pause(); // reads nothing: the server's writes back up
    sockets.push(socket);
  }
  await sleep(4000); // the streams fill the sockets' buffers, then stall
  const early = liveBytes() - before;
  const health = await t.http().get('/health');
  expect(health.status).toBe(200);
  await sleep(6000);
  // Each stream is P rows of P numbers, about 380 MB of JSON here. With a readable's default buffer of
  // 16 chunks of about 3 MB, memory grew by some 10 MB/s towards about 900 MB for 20 readers. Now it
  // stops at a couple of chunks of about 700 KB per reader.
  const held = liveBytes() - before;
  console.log(`stalled NDJSON readers: ${READERS}, P = ${P}, live memory held after 4 s: ${(early / 2 ** 20).toFixed(1)} MiB, after 10 s: ${(held / 2 ** 20).toFixed(1)} MiB`);
  expect(held).toBeLessThan(READERS * 4 * 2 ** 20);
  expect(held - early).toBeLessThan(24 * 2 ** 20);

  // STREAM_WRITE_TIMEOUT_SECONDS = 12: the server drops every stalled connection (its side first: the
  // kernel still holds unsent bytes for a client that reads nothing).
  const connections = () => new Promise<number>((resolve, reject) => t.app.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
  for (let i = 0; i < 600 && (await connections()) > 0; i++) await sleep(50);
  expect(await connections()).toBe(0);
  await sleep(200);
  expect(liveBytes() - before).toBeLessThan(32 * 2 ** 20);
  // Reading now, each client gets what the kernel held, then the end: far from the whole stream.
  const received = sockets.map(() => 0);
  sockets.forEach((socket, i) => socket.on('data', (chunk: Buffer) => (received[i] += chunk.length)).resume());
  const deadline = sleep(15_000).then(() => 'timeout');
  expect(await Promise.race([Promise.all(closed).then(() => 'closed'), deadline])).toBe('closed');
  const streamBytes = P * P * 4; // NDJSON takes more
  for (const bytes of received) expect(bytes).toBeLessThan(streamBytes / 4);
  for (const socket of sockets) socket.destroy();
});
