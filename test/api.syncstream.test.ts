/**
 * A synchronous binary answer (raw float32 or .npy) goes out as its rows are computed (issue 10): the
 * bytes equal the float64 PyTorch fixture, Content-Length gives the whole matrix, a failure after the
 * first bytes ends the body short of that length (what a client checks), and a client that leaves
 * mid-answer leaves nothing behind. Loopback only; every wait is bounded.
 */
import { readdir } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, expect, it, vi } from 'vitest';
import type { RowBlock } from '../src/compute/index.js';
import { mlpRequest } from '../src/bench/cases.js';
import { computeHessian } from '../src/hessian.js';
import { SpareBuffers } from '../src/jobs/spare-buffers.js';
import { SymmetricFill } from '../src/jobs/symmetric-fill.js';
import { checkNpyHeader, decodeFloat32LE, eventually, expectMatrixMatchesFixture, rawBody, TOLERANCE, useApp } from './api-helpers.js';
import { fixtures, relativeError } from './helpers.js';

const larger = fixtures().find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
const P = larger.expected.gradient.length;
// No small lane: every synchronous request here is a job whose rows are streamed.
const t = useApp({ SMALL_JOB_FLOPS: 0 });
let port = 0;

beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
});
afterEach(() => vi.restoreAllMocks());

/**
 * POST /v1/hessian for raw float32 over a plain socket: the response and every byte it delivered,
 * however it ended. `pauseMs`: a slow client, pausing that long after each chunk it reads.
 */
function postBinary(body: object, onResponse?: (res: IncomingMessage) => void, pauseMs = 0): Promise<{ res: IncomingMessage; bytes: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/hessian', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/octet-stream' } }, (res) => {
      onResponse?.(res);
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (!pauseMs) return;
        res.pause();
        setTimeout(() => res.resume(), pauseMs);
      });
      res.on('error', () => undefined); // "aborted": seen below as an incomplete message
      res.once('close', () => resolve({ res, bytes: Buffer.concat(chunks), complete: res.complete }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const rowsOfFixture = (count: number) => larger.expected.hessian.slice(0, count).flat();

it('a streamed raw float32 answer and a streamed .npy equal the fixture, with their full lengths and headers', async () => {
  const before = await readdir(t.dir);
  const binary = await t.http().post('/v1/hessian').set('accept', 'application/octet-stream').set('accept-encoding', 'identity').buffer(true).parse(rawBody).send(larger.request);
  expect(binary.status).toBe(200);
  expect(Number(binary.headers['content-length'])).toBe(P * P * 4);
  expect(Number(binary.headers['x-hessian-size'])).toBe(P);
  const ready = await t.http().get('/ready');
  expect(binary.headers['x-hessian-backend']).toBe(ready.body.backend); // the pool's: a job, not the small lane
  expect(Math.abs(Number(binary.headers['x-hessian-loss']) - larger.expected.loss)).toBeLessThan(TOLERANCE);
  expectMatrixMatchesFixture(decodeFloat32LE(binary.body), larger);

  const npy = await t.http().post('/v1/hessian').set('accept', 'application/x-npy').set('accept-encoding', 'identity').buffer(true).parse(rawBody).send(larger.request);
  expect(npy.status).toBe(200);
  expect(Number(npy.headers['content-length'])).toBe(npy.body.length);
  const offset = checkNpyHeader(npy.body, P, P);
  expectMatrixMatchesFixture(decodeFloat32LE(npy.body.subarray(offset)), larger);
  await eventually(async () => (await readdir(t.dir)).length === before.length);
});

it('a synchronous answer\'s job is not a job resource: GET /v1/jobs/{id} answers 404 while its answer is open', async () => {
  // Its id shows in the .npy filename; the rows its stream holds are not in its file.
  const { res, opened } = await new Promise<{ res: IncomingMessage; opened: Promise<{ status: number }> }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/hessian', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-npy' } }, (res) => {
      res.pause(); // the answer stays open, and its job with it, until the GET below is answered
      const id = /filename="hessian-(.+)\.npy"/.exec(String(res.headers['content-disposition']))![1];
      resolve({ res, opened: t.http().get(`/v1/jobs/${id}`).then((r) => r) });
    });
    req.on('error', reject);
    req.end(JSON.stringify(larger.request));
  });
  try {
    expect(res.statusCode).toBe(200);
    expect((await opened).status).toBe(404);
  } finally {
    res.resume(); // read to its end either way, so that the app can close
    await new Promise((resolve) => res.once('end', resolve));
  }
});

it('a slow client gets its answers exact while the row blocks it was sent are written again by later blocks and the next answer', async () => {
  // P = 3850 in blocks of some 10 MB: the socket holds blocks while the threads compute more.
  const request = mlpRequest([20, 48, 48, 10], 64);
  const expected = (await computeHessian(request, { method: 'structured' })).hessian!;
  const size = Math.sqrt(expected.length);
  const given: number[] = []; // the byteLength of each buffer as it was given (moved away since)
  const give = SpareBuffers.prototype.give;
  vi.spyOn(SpareBuffers.prototype, 'give').mockImplementation(function (this: SpareBuffers, buffer) {
    given.push(buffer.byteLength);
    give.call(this, buffer);
  });
  for (let answer = 0; answer < 2; answer++) {
    const { res, bytes, complete } = await postBinary(request, undefined, 1);
    expect(res.statusCode).toBe(200);
    expect(complete).toBe(true);
    expect(bytes.length).toBe(size * size * 4);
    expect(relativeError(decodeFloat32LE(bytes), expected)).toBeLessThan(1e-5);
  }
  // Every block was held for the socket (59 MB in all, within HELD_BLOCK_BYTES), so the buffers of whole
  // rows (P floats each; a tile's rows are shorter) that became spares were let go of by the answers.
  const released = given.filter((bytes) => bytes > 0 && bytes % (4 * size) === 0);
  expect(released.length).toBeGreaterThan(2);
});

it('a failure after the first rows ends the body short of Content-Length; what came is the first rows, exact', async () => {
  // Row blocks after the first fail (their fill, as if the file it reads had failed): held until the
  // answer has begun, then failed. (Their writes cannot be made to fail: the rows the answer holds are
  // not written.)
  const fill = SymmetricFill.prototype.fill;
  let begun!: () => void;
  const answering = new Promise<void>((resolve) => (begun = resolve));
  vi.spyOn(SymmetricFill.prototype, 'fill').mockImplementation(async function (this: SymmetricFill, dest, rows) {
    if ((this as unknown as { blocks: RowBlock[] }).blocks[dest].row === 0) return fill.call(this, dest, rows);
    await answering;
    throw new Error('injected: the fill failed');
  });
  const { res, bytes, complete } = await postBinary(larger.request, () => begun());
  expect(res.statusCode).toBe(200);
  const announced = Number(res.headers['content-length']);
  expect(announced).toBe(P * P * 4);
  // How a client tells: the connection closed before Content-Length bytes (Node: res.complete false).
  expect(complete).toBe(false);
  expect(bytes.length).toBeLessThan(announced);
  const rows = Math.floor(bytes.length / (4 * P));
  expect(rows).toBeGreaterThan(0);
  expect(relativeError(decodeFloat32LE(bytes.subarray(0, rows * P * 4)), rowsOfFixture(rows))).toBeLessThan(TOLERANCE);
  // The job failed and is gone; the service answers on.
  await eventually(async () => (await readdir(t.dir)).length === 0);
  expect((await t.http().get('/health')).status).toBe(200);
});

it('a failure before the first rows is an error status, not a short body', async () => {
  vi.spyOn(SymmetricFill.prototype, 'fill').mockRejectedValue(new Error('injected: the fill failed'));
  const res = await t.http().post('/v1/hessian').set('accept', 'application/octet-stream').send(larger.request);
  expect(res.status).toBe(500);
  expect(res.body.error).toBe('internal');
  expect(res.body.message).toMatch(/injected: the fill failed/);
});

it('a client that leaves mid-answer cancels the job, which leaves nothing in RESULTS_DIR', async () => {
  const fill = SymmetricFill.prototype.fill;
  let left!: () => void;
  const gone = new Promise<void>((resolve) => (left = resolve));
  vi.spyOn(SymmetricFill.prototype, 'fill').mockImplementation(async function (this: SymmetricFill, dest, rows) {
    if ((this as unknown as { blocks: RowBlock[] }).blocks[dest].row > 0) await gone; // the rest of the matrix comes only after the client has gone
    return fill.call(this, dest, rows);
  });
  const rowsComputed = async () => Number(/^hessian_rows_computed_total (\d+)/m.exec((await t.http().get('/metrics')).text)![1]);
  const rowsBefore = await rowsComputed();
  const { res, complete } = await postBinary(larger.request, (response) => response.once('data', () => response.destroy()));
  expect(res.statusCode).toBe(200);
  expect(complete).toBe(false);
  const jobs = async () => (await t.http().get('/metrics')).text;
  await eventually(async () => /hessian_jobs\{status="cancelled"\} 1/.test(await jobs()));
  left();
  await eventually(async () => (await readdir(t.dir)).length === 0);
  expect(await jobs()).toMatch(/hessian_jobs\{status="running"\} 0/);
  expect((await rowsComputed()) - rowsBefore).toBeLessThan(P); // cancelled: the rest of the matrix was never computed
});
