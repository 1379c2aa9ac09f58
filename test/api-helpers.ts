/**
 * Shared helpers of the API tests (test/api.*.test.ts): an app on a fresh RESULTS_DIR, binary bodies,
 * an independent .npy header check, job polling and deterministic random requests.
 */
import { mulberry32 } from '../src/compute/initializers.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, expect } from 'vitest';
import { buildApp } from '../src/app.js';
import { backendPreference } from '../src/compute/backend.js';
import { loadConfig, type Config } from '../src/config.js';
import { relativeError, type FixtureCase } from './helpers.js';

export const TOLERANCE = 1e-4;

export interface TestApp {
  app: FastifyInstance;
  dir: string;
  config: Config;
  /** A supertest client of the app's server. */
  http: () => ReturnType<typeof request>;
  close: () => Promise<void>;
}

export const freshDir = () => mkdtemp(join(tmpdir(), 'hessian-api-test-'));

/** A file's fresh directories: each call makes one; all are removed after the file's tests. */
export function tempDirs(): () => Promise<string> {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await removeDir(dir);
  });
  return async () => {
    const dir = await freshDir();
    dirs.push(dir);
    return dir;
  };
}

/**
 * Builds an app (its own RESULTS_DIR unless given), waits for /ready to answer 200. The backend is
 * HESSIAN_BACKEND's, so that CI's second pass (HESSIAN_BACKEND=tensorflow) runs every API test on it.
 */
export async function startApp(overrides: Partial<Config> = {}): Promise<TestApp> {
  const dir = overrides.RESULTS_DIR ?? (await freshDir());
  const config = loadConfig({}, { WORKERS: 2, LOG_LEVEL: 'silent', HESSIAN_BACKEND: backendPreference(), ...overrides, RESULTS_DIR: dir });
  const app = await buildApp(config);
  await app.ready();
  const http = () => request(app.server);
  await waitForReady(http);
  let closed = false;
  return {
    app,
    dir,
    config,
    http,
    close: async () => {
      if (closed) return;
      closed = true;
      await app.close();
    },
  };
}

/**
 * Starts an app before this file's tests and closes it (and removes its RESULTS_DIR) after them;
 * the returned object forwards to that app.
 */
export function useApp(overrides: Partial<Config> = {}): TestApp {
  let current: TestApp | undefined;
  beforeAll(async () => {
    current = await startApp(overrides);
  });
  afterAll(async () => {
    await current?.close();
    if (current) await removeDir(current.dir);
  });
  const started = () => {
    if (!current) throw new Error('the app has not started');
    return current;
  };
  return {
    get app() {
      return started().app;
    },
    get dir() {
      return started().dir;
    },
    get config() {
      return started().config;
    },
    http: () => started().http(),
    close: () => started().close(),
  };
}

/** Polls /ready until 200 (503 while the workers load their backend). */
export async function waitForReady(http: () => ReturnType<typeof request>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await http().get('/ready');
    if (res.status === 200) return;
    expect(res.status).toBe(503);
    expect(res.body.status).toBe('starting');
    if (Date.now() > deadline) throw new Error('the app did not become ready');
    await sleep(50);
  }
}

export const removeDir = (dir: string) => rm(dir, { recursive: true, force: true });

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** supertest parser that keeps the raw body as a Buffer, whatever the content type. */
// superagent's Response type is what its parse() declares; the object is the IncomingMessage stream.
export const rawBody = (response: unknown, cb: (err: Error | null, body: any) => void) => {
  const res = response as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
  res.on('error', (e: Error) => cb(e, Buffer.concat(chunks)));
};

/** Little-endian float32 values of a byte buffer (copied, so alignment does not matter). */
export function decodeFloat32LE(bytes: Buffer): Float32Array {
  expect(bytes.length % 4).toBe(0);
  const out = new Float32Array(bytes.length / 4);
  if (endianness() === 'LE') {
    new Uint8Array(out.buffer).set(bytes);
    // Spot-check the fast path against an explicit little-endian read.
    for (let i = 0; i < out.length; i += Math.max(1, Math.floor(out.length / 1000))) expect(out[i]).toBe(bytes.readFloatLE(i * 4));
  } else {
    for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  }
  return out;
}

/**
 * Checks the .npy 1.0 header by the format's definition (independent of src/jobs/npy.ts):
 * magic \x93NUMPY, version 1.0, uint16 LE header length, a dict literal with descr '<f4',
 * fortran_order False and shape (rows, columns), padded with spaces to a multiple of 64 bytes
 * and ending in a newline. Returns the data's byte offset.
 */
export function checkNpyHeader(bytes: Buffer, rows: number, columns: number): number {
  expect(bytes.subarray(0, 6).equals(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]))).toBe(true);
  expect(bytes[6]).toBe(1);
  expect(bytes[7]).toBe(0);
  const headerLength = bytes.readUInt16LE(8);
  const dataOffset = 10 + headerLength;
  expect(dataOffset % 64).toBe(0);
  const dict = bytes.subarray(10, dataOffset).toString('latin1');
  expect(dict.endsWith('\n')).toBe(true);
  expect(dict.trimEnd()).toMatch(/^\{.*\}$/);
  expect(dict).toMatch(/'descr':\s*'<f4'/);
  expect(dict).toMatch(/'fortran_order':\s*False/);
  const shape = /'shape':\s*\((\d+),\s*(\d+),?\)/.exec(dict);
  expect(shape).not.toBeNull();
  expect([Number(shape![1]), Number(shape![2])]).toEqual([rows, columns]);
  expect(bytes.length - dataOffset).toBe(rows * columns * 4);
  return dataOffset;
}

/** Relative error of the loss as the engine tests measure it. */
export const lossError = (actual: number, expected: number) => Math.abs(actual - expected) / Math.max(1, Math.abs(expected));

/** Asserts a JSON result of POST /v1/hessian or GET result against a fixture's float64 reference. */
export function expectJsonMatchesFixture(body: any, fixture: FixtureCase): void {
  const { expected } = fixture;
  const P = expected.gradient.length;
  expect(body.parameters).toEqual(expected.parameters);
  expect(body.size).toBe(P);
  expect(lossError(body.loss, expected.loss)).toBeLessThan(TOLERANCE);
  expect(body.gradient).toHaveLength(P);
  expect(relativeError(body.gradient, expected.gradient)).toBeLessThan(TOLERANCE);
  expect(body.hessian).toHaveLength(P);
  for (const row of body.hessian) expect(row).toHaveLength(P);
  expect(relativeError(body.hessian.flat(), expected.hessian.flat())).toBeLessThan(TOLERANCE);
  expect(body.meta.dtype).toBe('float32');
  expect(['tensorflow', 'wasm', 'cpu', 'js']).toContain(body.meta.backend);
  expect(typeof body.meta.elapsedMs).toBe('number');
}

/** Asserts a flat P*P float32 matrix against a fixture's Hessian. */
export function expectMatrixMatchesFixture(values: ArrayLike<number>, fixture: FixtureCase): void {
  const expected = fixture.expected.hessian.flat();
  expect(values.length).toBe(expected.length);
  expect(relativeError(values, expected)).toBeLessThan(TOLERANCE);
}

/** Polls GET /v1/jobs/:id until `done(job)` holds; returns every observed job body in order. */
export async function pollJob(
  http: () => ReturnType<typeof request>,
  id: string,
  done: (job: any) => boolean,
  { intervalMs = 20, timeoutMs = 60_000 } = {},
): Promise<any[]> {
  const seen: any[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await http().get(`/v1/jobs/${id}`);
    expect(res.status).toBe(200);
    seen.push(res.body);
    if (done(res.body)) return seen;
    if (Date.now() > deadline) throw new Error(`job ${id} did not reach the expected state; last ${JSON.stringify(res.body)}`);
    await sleep(intervalMs);
  }
}

export const isFinishedStatus = (status: string) => ['succeeded', 'failed', 'cancelled'].includes(status);

/** Queues a job and polls it until it has finished; its record as first seen finished. */
export async function finishedJob(app: TestApp, body: object): Promise<any> {
  const created = await app.http().post('/v1/jobs').send(body);
  expect(created.status).toBe(202);
  const seen = await pollJob(app.http, created.body.id, (job) => isFinishedStatus(job.status));
  return seen[seen.length - 1];
}

/** Waits until `check()` holds (for effects that follow a response, e.g. files removed after it). */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(25);
  }
}

/** A small deterministic PRNG (mulberry32), so that data is the same on every run. */
export const rng = mulberry32;

/**
 * An MLP request sizes[0] -> sizes[1] -> ... with tanh hidden layers and a linear output under
 * categorical cross-entropy from logits; weights are left to the model seed, data drawn from `dataSeed`.
 */
export function mlpRequest(sizes: number[], batch: number, { seed = 7, dataSeed = 11 } = {}) {
  const random = rng(dataSeed);
  const inputs = sizes[0];
  const classes = sizes[sizes.length - 1];
  const x = Array.from({ length: batch }, () => Array.from({ length: inputs }, () => random() * 2 - 1));
  const y = Array.from({ length: batch }, (_, b) => Array.from({ length: classes }, (_, c) => (c === b % classes ? 1 : 0)));
  return {
    model: {
      inputShape: [inputs],
      seed,
      layers: sizes.slice(1).map((units, l) => ({
        type: 'dense',
        units,
        activation: l === sizes.length - 2 ? 'linear' : 'tanh',
      })),
    },
    loss: { type: 'categoricalCrossentropy', fromLogits: true },
    data: { x, y },
  };
}

/**
 * An MLP request behind a flatten (the identity on its rank-1 input), which puts it on the graph engine:
 * its rows come in many small blocks, so that a test can catch its job half way (on the structured
 * path a tensor's rows may be one block, done all at once). Layers are named by their place, so its
 * dense layers are dense_2 on.
 */
export function behindFlatten<R extends { model: { layers: object[] } }>(request: R): R {
  return { ...request, model: { ...request.model, layers: [{ type: 'flatten' }, ...request.model.layers] } };
}

/** Number of parameters of a dense MLP with biases. */
export const mlpSize = (sizes: number[]) => sizes.slice(1).reduce((sum, units, l) => sum + (sizes[l] + 1) * units, 0);

/** The medium job of the brief: P = 6154, about a second or two on two workers. */
export const MEDIUM = { sizes: [20, 64, 64, 10], batch: 64 };
/** The large job of the brief: P = 11878, several seconds on two workers. */
export const LARGE = { sizes: [25, 92, 92, 10], batch: 256 };

/** Parses an NDJSON stream body of {"offset","rows"} lines into a flat matrix, checking row order. */
export function reassembleNdjson(text: string, size: number): Float32Array {
  const lines = text.split('\n');
  expect(lines.pop()).toBe(''); // every line ends with a newline
  const out = new Float32Array(size * size);
  let next = 0;
  for (const line of lines) {
    const chunk = JSON.parse(line);
    expect(chunk.error).toBeUndefined();
    expect(chunk.offset).toBe(next);
    for (const row of chunk.rows) {
      expect(row).toHaveLength(size);
      out.set(row, next * size);
      next++;
    }
  }
  expect(next).toBe(size);
  return out;
}

/** Index and value of the first difference of two equal-length arrays, or null. */
export function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): { index: number; a: number; b: number } | null {
  if (a.length !== b.length) return { index: -1, a: a.length, b: b.length };
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return { index: i, a: a[i], b: b[i] };
  return null;
}

/** Features of linearBody's layer. */
export const FEATURES = 40;

/** A linear FEATURES -> 1 layer with given weights under MSE, `batch` rows of 5-decimal numbers (some 330 bytes a row). */
export function linearBody(batch: number) {
  const random = rng(5);
  const value = () => Number((random() * 2 - 1).toFixed(5));
  const kernel = Array.from({ length: FEATURES }, () => [value()]);
  const bias = [value()];
  const x = Array.from({ length: batch }, () => Array.from({ length: FEATURES }, value));
  const y = Array.from({ length: batch }, () => [value()]);
  return { model: { inputShape: [FEATURES], layers: [{ type: 'dense', units: 1, kernel, bias }] }, loss: 'meanSquaredError', data: { x, y } };
}

/**
 * Float64 reference sharing nothing with the engine: for y = x·w + b under MSE over B rows, with
 * z = [x, 1] and r = z·[w, b] - y: loss = mean r², gradient = 2/B Σ r z, Hessian = 2/B Σ z zᵀ. The
 * service reads its inputs as float32, so the reference does too. gradientScale: the largest term of
 * the gradient's mean, the scale of its float32 rounding (the terms' signs cancel in the mean).
 */
export function linearReference(body: ReturnType<typeof linearBody>) {
  const f = Math.fround;
  const size = FEATURES + 1;
  const weights = [...body.model.layers[0].kernel.map((row) => f(row[0])), f(body.model.layers[0].bias[0])];
  const hessian = Array.from({ length: size }, () => new Float64Array(size));
  const gradient = new Float64Array(size);
  let gradientScale = 0;
  let loss = 0;
  const batch = body.data.x.length;
  body.data.x.forEach((row, b) => {
    const z = [...row.map(f), 1];
    const r = z.reduce((s, v, i) => s + v * weights[i], 0) - f(body.data.y[b][0]);
    loss += (r * r) / batch;
    for (let i = 0; i < size; i++) {
      gradient[i] += (2 * r * z[i]) / batch;
      gradientScale = Math.max(gradientScale, Math.abs(2 * r * z[i]));
      for (let j = 0; j < size; j++) hessian[i][j] += (2 * z[i] * z[j]) / batch;
    }
  });
  return { loss, gradient, hessian, gradientScale };
}

/** An answer (loss, gradient, Hessian) against linearReference, each to 1e-4 of its largest entry. */
export function expectMatchesLinearReference(answer: { loss: number; gradient: number[]; hessian: number[][] }, reference: ReturnType<typeof linearReference>) {
  const near = (actual: number, expected: number, scale: number) => expect(Math.abs(actual - expected) / Math.max(1, Math.abs(scale))).toBeLessThan(TOLERANCE);
  near(answer.loss, reference.loss, reference.loss);
  const largestGradient = Math.max(reference.gradientScale, ...reference.gradient.map(Math.abs));
  answer.gradient.forEach((g, i) => near(g, reference.gradient[i], largestGradient));
  const largest = Math.max(...reference.hessian.map((row) => Math.max(...row.map(Math.abs))));
  expect(answer.hessian).toHaveLength(FEATURES + 1);
  answer.hessian.forEach((row, i) => row.forEach((h, j) => near(h, reference.hessian[i][j], largest)));
}
