/**
 * Hostile-client fuzzing of the HTTP API (issue 7): a deterministic stream of requests mutated from the
 * README's example and small valid bodies for every loss, and the check every answer must pass: no 5xx,
 * a body that is strict JSON wherever JSON is declared (no NaN or Infinity tokens), an error body with its
 * code, binary results of the size their headers announce. Used by test/fuzz.test.ts and `npm run fuzz`.
 */
import { mulberry32 } from '../compute/initializers.js';
import { EXAMPLE_REQUEST } from '../schemas/examples.js';

export interface FuzzRequest {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  headers: Record<string, string>;
  payload?: string;
  /** The mutations applied, to reproduce a failure. */
  label: string;
}

export interface FuzzResponse {
  statusCode: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Random = () => number;

const dense = (units: number, activation: Json, extra: Record<string, Json> = {}) => ({ type: 'dense', units, activation, ...extra });

/**
 * Valid bodies to mutate: the README's 2x2 example, and tiny seeded models (weights left out) that
 * cover every loss, activation objects, regularizers, layer names, `wrt` and the sparse labels.
 */
export const FUZZ_BASES: Json[] = [
  EXAMPLE_REQUEST as unknown as Json,
  {
    model: { inputShape: [3], seed: 7, layers: [dense(4, 'tanh', { kernelRegularizer: { l2: 0.01 } }), dense(3, 'softmax')] },
    loss: 'categoricalCrossentropy',
    data: { x: [[1, 0, -1], [0.5, 2, 0]], y: [[1, 0, 0], [0.2, 0.3, 0.5]] },
  },
  {
    model: { inputShape: [2], layers: [dense(3, { type: 'elu', alpha: 0.5 }, { name: 'hidden' }), dense(2, 'sigmoid', { name: 'out' })] },
    loss: { type: 'binaryCrossentropy', fromLogits: false },
    data: { x: [[1, 2], [-1, 0.5], [0, 0]], y: [[1, 0], [0, 1], [1, 1]] },
    wrt: ['out/kernel', 'hidden/bias'],
  },
  {
    model: { inputShape: [2], layers: [dense(3, 'relu', { useBias: false }), dense(3, 'linear')] },
    loss: { type: 'sparseCategoricalCrossentropy', fromLogits: true },
    data: { x: [[1, 2], [3, -1]], y: [2, 0] },
  },
  {
    model: { inputShape: [2], layers: [dense(2, { type: 'leakyRelu', alpha: 0.1 }), dense(1, 'softplus')] },
    loss: { type: 'huber', delta: 0.5 },
    data: { x: [[1, 2], [3, -1]], y: [[1], [0]] },
  },
  // the shape of issue 7's overflow body (kernel 1e19, l2 100 gave "loss":Infinity)
  {
    model: { inputShape: [1], layers: [dense(1, 'linear', { useBias: false, kernel: [[2]], kernelRegularizer: { l2: 0.5 } })] },
    loss: 'meanSquaredError',
    data: { x: [[1], [0]], y: [[0], [1]] },
  },
];

/** What POST /v1/curvature adds to a body: each quantity with some of its options (hvp's vectors fit the README example, P = 4). */
const CURVATURE_FIELDS: Record<string, Json>[] = [
  { quantity: 'hvp', vectors: [[1, 0, 0, 0], [0.5, -1, 2, 0]] },
  { quantity: 'hvp', matrix: 'ggn', vectors: [[0, 0, 1, 0]] },
  { quantity: 'ggn' },
  { quantity: 'fisher' },
  { quantity: 'diagonal', matrix: 'fisher' },
  { quantity: 'eigenvalues', k: 2, which: 'smallest', vectors: true },
  { quantity: 'eigenvalues', matrix: 'ggn', tolerance: 1e-3, maxIterations: 20 },
  { quantity: 'trace', method: 'hutchinson', samples: 20, seed: 3 },
  { quantity: 'trace' },
  { quantity: 'density', runs: 2, steps: 8, gridPoints: 50 },
];

const ACCEPTS = ['application/json', 'application/octet-stream', 'application/x-npy', '*/*', 'text/html', 'application/json;q=0', 'garbage/\u00ff', ''];
const CONTENT_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/JSON', ''];
const WRONG_TYPES: Json[] = [null, true, false, 'x', '', 0, -1, 1.5, [], {}, [1], [[]], { a: 1 }, ['dense_1/kernel']];
const EXTREME_NUMBERS: Json[] = [1e308, -1e308, 1e300, 3.4e38, 3.5e38, -3.5e38, 1e19, 1e20, 2 ** 31, 2 ** 53 + 2, -(2 ** 31), 1e6, 1e7, 5e-324, 1e-320, -0, 0.5, 1e-45, 1e-7];
/** Finite numbers that keep a body valid but push float32 (overflow, underflow, log 0). */
const EXTREME_FINITE: Json[] = [1e308, -1e308, 1e38, 3.5e38, 1e19, 1e20, -1e20, 1e10, -1e10, 100, -100, 1e-30, 1e-45, 5e-324, 0, -0, 1, -1];
const NUMBER_LIKE_STRINGS: Json[] = ['NaN', 'Infinity', '-Infinity', '1e999', '0x10', '1_000', ' 1', '', '١'];
const UNKNOWN_NAMES: Json[] = ['foo', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'dense_9/kernel', 'dense_1/kernel', 'dense_1', 'Dense', 'SIGMOID', 'sigmoid ', 'mse', 'huber_loss', 'softmax', '../../etc/passwd', '\u0000', '😀'];
/** Raw replacements of one number token: invalid JSON, or JSON with values zod must refuse. */
const NUMBER_TOKENS = ['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '01', '.5', '+1', '1.', '0x1F', '1e', '-', '1e-999', '123456789012345678901234567890'];

const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)];
const clone = <T extends Json>(value: T): T => JSON.parse(JSON.stringify(value));

/** Every path in a JSON value, the root included. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return [prefix, ...value.flatMap((v, i) => paths(v, [...prefix, i]))];
  if (value && typeof value === 'object') return [prefix, ...Object.entries(value).flatMap(([k, v]) => paths(v, [...prefix, k]))];
  return [prefix];
}

function getAt(root: Json, path: (string | number)[]): Json {
  return path.reduce<Json>((at, key) => (at as Record<string | number, Json>)[key], root);
}

/** Sets (or with `undefined`, removes) the value at a non-root path. */
function setAt(root: Json, path: (string | number)[], value: Json | undefined): void {
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, Json> & Json[];
  const key = path[path.length - 1];
  if (value !== undefined) parent[key] = value;
  else if (Array.isArray(parent)) parent.splice(key as number, 1);
  else delete parent[key];
}

function nested(depth: number): Json {
  return JSON.parse('['.repeat(depth) + ']'.repeat(depth));
}

/** Structural mutations of the value at one path: a description and the new value (undefined: removed). */
const VALUE_MUTATIONS: ((random: Random, current: Json) => [string, Json | undefined])[] = [
  () => ['drop', undefined],
  (random) => ['wrong type', pick(random, WRONG_TYPES)],
  (random) => ['extreme number', pick(random, EXTREME_NUMBERS)],
  (random) => ['number-like string', pick(random, NUMBER_LIKE_STRINGS)],
  (random) => {
    // (deeper nesting is a text mutation: this module's own recursion stays shallow)
    const depth = pick(random, [2, 3, 10, 100]);
    return [`nesting depth ${depth}`, nested(depth)];
  },
  (random) => {
    const length = pick(random, [100, 10_000, 1_000_000]);
    return [`string of ${length}`, pick(random, ['a', 'é', '😀', '\\', '"', '\u0000']).repeat(length)];
  },
  // wrong shapes: one entry more or less, wrapped, flattened
  (random, current) => [
    'shape',
    Array.isArray(current) && current.length ? pick(random, [[...current, current[0]], current.slice(1), [current], current.flat()]) : [current],
  ],
  (random) => ['unknown name', pick(random, UNKNOWN_NAMES)],
  // a plausible number somewhere else: small integers break shapes, scaled weights overflow float32
  (random, current) => ['scaled number', typeof current === 'number' ? current * pick(random, [-1, 0, 1e10, 1e20, 1e30, 1e-30]) : Math.floor(random() * 8)],
];

/** One structural mutation of a parsed body at a random path, or an extra key beside it; returns its description. */
function mutateValue(random: Random, body: Json): { body: Json; label: string } {
  const path = pick(random, paths(body).filter((p) => p.length > 0));
  const container = getAt(body, path.slice(0, -1));
  if (random() < 0.1 && container && typeof container === 'object' && !Array.isArray(container)) {
    const key = pick(random, ['extra', 'activation', 'kernel', 'alpha', 'delta', 'fromLogits', 'seed', 'y']);
    container[key] = pick(random, WRONG_TYPES);
    return { body, label: `key ${key} set beside ${JSON.stringify(path)}` };
  }
  const [what, value] = pick(random, VALUE_MUTATIONS)(random, getAt(body, path));
  setAt(body, path, value);
  return { body, label: `${what} at ${JSON.stringify(path)}` };
}

/** Replaces one number of a body by an extreme finite one: a body that often stays valid and computes. */
function mutateNumber(random: Random, body: Json): { body: Json; label: string } {
  const numeric = paths(body).filter((p) => p.length > 0 && typeof getAt(body, p) === 'number');
  if (!numeric.length) return mutateValue(random, body);
  const path = pick(random, numeric);
  const value = random() < 0.5 ? pick(random, EXTREME_FINITE) : (getAt(body, path) as number) * pick(random, [1e10, 1e20, 1e30, 1e-30, -1]);
  setAt(body, path, value);
  return { body, label: `number ${value} at ${JSON.stringify(path)}` };
}

/** Mutations of the JSON text itself: duplicate keys, bad number tokens, deep nesting, truncation, a flipped byte. */
function mutateText(random: Random, text: string): { text: string; label: string } {
  const kind = Math.floor(random() * 6);
  if (kind === 0) {
    const key = pick(random, ['model', 'loss', 'data', 'wrt', '__proto__', 'constructor']);
    const value = JSON.stringify(pick(random, WRONG_TYPES));
    // at the start the original (later) key wins, at the end the duplicate does
    return random() < 0.5
      ? { text: `{"${key}":${value},${text.slice(1)}`, label: `duplicate key ${key} first` }
      : { text: `${text.slice(0, -1)},"${key}":${value}}`, label: `duplicate key ${key} last` };
  }
  const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][-+]?\d+)?/g)];
  if (kind <= 2 && numbers.length) {
    const match = pick(random, numbers);
    const depth = pick(random, [1000, 10_000, 100_000]);
    const token = kind === 1 ? pick(random, NUMBER_TOKENS) : '['.repeat(depth) + ']'.repeat(depth);
    const label = kind === 1 ? `number token ${token}` : `a number nested ${depth} deep`;
    return { text: text.slice(0, match.index) + token + text.slice(match.index! + match[0].length), label };
  }
  if (kind === 3) {
    const at = Math.floor(random() * text.length);
    return { text: text.slice(0, at), label: `truncated at ${at}` };
  }
  if (kind === 4) {
    const at = Math.floor(random() * text.length);
    const byte = String.fromCharCode(Math.floor(random() * 128));
    return { text: text.slice(0, at) + byte + text.slice(at + 1), label: `byte ${JSON.stringify(byte)} at ${at}` };
  }
  return { text: pick(random, ['null', '[]', '1', '"x"', 'true', '{}', '', ' ', '{"model":', '[{}]']), label: 'another top-level value' };
}

/** A job id to poke at (as it goes in the URL): one this run created, or a malformed / unknown one. */
function jobId(random: Random, created: readonly string[]): string {
  if (created.length && random() < 0.6) return pick(random, created);
  return pick(random, ['00000000-0000-4000-8000-000000000000', 'x', '..', '%2e%2e%2f%2e%2e', 'a'.repeat(300), '%00', '%F0%9F%98%80', '1e999']);
}

const json = (label: string, body: Json): FuzzRequest => ({ method: 'POST', url: '/v1/hessian', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body), label });

/** Requests that once broke the service (issue 7), the first of every run. */
export const REGRESSIONS: FuzzRequest[] = [
  json('issue 7: a loss finite in float64 but Infinity in float32 (kernel 1e19, l2 100)', {
    model: { inputShape: [1], layers: [dense(1, 'linear', { useBias: false, kernel: [[1e19]], kernelRegularizer: { l2: 100 } })] },
    loss: 'meanSquaredError',
    data: { x: [[0]], y: [[0]] },
  }),
  json('issue 7: a sigmoid output saturated to exactly 1 and 0 under binaryCrossentropy', {
    model: { inputShape: [1], layers: [dense(1, 'sigmoid', { kernel: [[200]], bias: [0] })] },
    loss: 'binaryCrossentropy',
    data: { x: [[1], [-1]], y: [[0], [1]] },
  }),
  json('issue 7: softmax with a label whose probability underflows float32', {
    model: { inputShape: [1], layers: [dense(3, 'softmax', { kernel: [[0, 0, 0]], bias: [150, 0, -1] })] },
    loss: 'categoricalCrossentropy',
    data: { x: [[1]], y: [[0, 1, 0]] },
  }),
  { ...json('an array nested 100000 deep', null), payload: '['.repeat(100_000) + ']'.repeat(100_000) },
];

/**
 * The i-th request of the run for `seed`: mostly mutated POST /v1/hessian bodies, some to /v1/curvature, some as jobs, and
 * GET/DELETE on job ids with assorted Accept headers. `created` holds job ids the run has seen so far.
 */
export function fuzzRequest(seed: number, i: number, created: readonly string[]): FuzzRequest {
  if (i < REGRESSIONS.length) return REGRESSIONS[i];
  const random = mulberry32(seed * 1_000_003 + i);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (random() < 0.3) headers.accept = pick(random, ACCEPTS);
  const roll = random();
  if (roll < 0.1) {
    const id = jobId(random, created);
    const suffix = pick(random, ['', '/result', '/stream']);
    const method = suffix === '' && random() < 0.3 ? 'DELETE' : 'GET';
    return { method, url: `/v1/jobs/${id}${suffix}`, headers: headers.accept ? { accept: headers.accept } : {}, label: `${method} job ${id}${suffix}` };
  }
  const url = roll < 0.2 ? '/v1/jobs' : roll < 0.35 ? '/v1/curvature' : '/v1/hessian';
  let body = clone(pick(random, FUZZ_BASES));
  if (url === '/v1/curvature') body = { ...(body as Record<string, Json>), ...clone(pick(random, CURVATURE_FIELDS)) };
  const labels: string[] = [];
  // Half the bodies get extreme numbers only (they mostly compute), half one or two structural mutations.
  const numbersOnly = random() < 0.5;
  const mutations = 1 + Math.floor(random() * 2);
  for (let m = 0; m < mutations; m++) {
    const mutated = numbersOnly ? mutateNumber(random, body) : mutateValue(random, body);
    body = mutated.body;
    labels.push(mutated.label);
  }
  let payload = JSON.stringify(body) ?? '';
  if (!numbersOnly && random() < 0.4) {
    const mutated = mutateText(random, payload);
    payload = mutated.text;
    labels.push(mutated.label);
  }
  if (random() < 0.05) {
    headers['content-type'] = pick(random, CONTENT_TYPES);
    labels.push(`content-type ${JSON.stringify(headers['content-type'])}`);
  }
  return { method: 'POST', url, headers, payload, label: labels.join('; ') };
}

/**
 * A dense matrix in a 200 answer (/v1/hessian's hessian, /v1/curvature's ggn and fisher) must be P x P and
 * symmetric: up to float32 rounding of the two ways its mirrored entries are computed (1e-3 of its largest entry).
 */
function matrixProblem(result: Record<string, unknown>): string | null {
  for (const key of ['hessian', 'ggn', 'fisher']) {
    const matrix = result[key] as number[][] | undefined;
    if (!Array.isArray(matrix)) continue;
    const size = Number(result.size);
    if (!(matrix.length === size && matrix.every((row) => Array.isArray(row) && row.length === size))) return `a ${key} that is not ${size} x ${size}`;
    const largest = Math.max(0, ...matrix.map((row) => Math.max(...row.map(Math.abs))));
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < i; j++) {
        if (Math.abs(matrix[i][j] - matrix[j][i]) > 1e-3 * largest) return `a ${key} that is not symmetric: [${i}][${j}] = ${matrix[i][j]}, [${j}][${i}] = ${matrix[j][i]}`;
      }
    }
  }
  return null;
}

const header = (response: FuzzResponse, name: string) => String(response.headers[name] ?? '');

/** What is wrong with an answer, or null when it is acceptable. */
export function problemWith(response: FuzzResponse): string | null {
  const { statusCode: status, body } = response;
  if (status >= 500) return `status ${status}: ${body.toString('utf8', 0, 300)}`;
  const type = header(response, 'content-type');
  if (type.startsWith('application/json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8')); // strict: NaN, Infinity, trailing text all fail
    } catch (error) {
      return `invalid JSON (${(error as Error).message}): ${body.toString('utf8', 0, 300)}`;
    }
    if (status >= 400) {
      const error = parsed as { error?: unknown; message?: unknown };
      if (typeof error.error !== 'string' || typeof error.message !== 'string') return `error body without error/message: ${body.toString('utf8', 0, 300)}`;
    }
    if (status === 200) return matrixProblem(parsed as Record<string, unknown>);
    return null;
  }
  if (status >= 400) return `error ${status} is not JSON (${type})`;
  if (type.startsWith('application/x-ndjson')) {
    for (const line of body.toString('utf8').split('\n').filter(Boolean)) {
      try {
        JSON.parse(line);
      } catch {
        return `invalid NDJSON line: ${line.slice(0, 200)}`;
      }
    }
    return null;
  }
  if (type.startsWith('application/octet-stream') && status === 200) {
    const size = Number(header(response, 'x-hessian-size'));
    // a job's stream may end early (a job that failed midway); a whole matrix has exactly P*P floats
    const rows = body.length / (4 * size);
    if (!Number.isInteger(rows) || rows > size) return `octet-stream of ${body.length} bytes for P = ${size}`;
    return null;
  }
  if (type.startsWith('application/x-npy') && status === 200) {
    if (body.toString('latin1', 0, 6) !== '\x93NUMPY') return 'an .npy answer without the NumPy magic';
    return null;
  }
  if (status === 200 || status === 202) return `unexpected content-type ${type} for ${status}`;
  return null;
}

/** Result of a run: counts by status and every problem found, each with its request. */
export interface FuzzReport {
  sent: number;
  statuses: Record<number, number>;
  problems: { request: FuzzRequest; problem: string }[];
  elapsedMs: number;
}

/**
 * Sends `count` requests (`concurrency` at a time) through `send` and checks every answer. Job ids
 * from 202 answers are remembered for later GET/DELETE requests. Stops early when `deadline` passes.
 */
export async function runFuzz(
  send: (request: FuzzRequest) => Promise<FuzzResponse>,
  { seed, count, concurrency = 8, deadline = Infinity }: { seed: number; count: number; concurrency?: number; deadline?: number },
): Promise<FuzzReport> {
  const started = Date.now();
  const report: FuzzReport = { sent: 0, statuses: {}, problems: [], elapsedMs: 0 };
  const created: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < count && Date.now() < deadline) {
      const request = fuzzRequest(seed, next++, created);
      let response: FuzzResponse;
      try {
        response = await send(request);
      } catch (error) {
        report.problems.push({ request, problem: `no answer: ${(error as Error).message}` });
        continue;
      }
      report.sent++;
      report.statuses[response.statusCode] = (report.statuses[response.statusCode] ?? 0) + 1;
      const problem = problemWith(response);
      if (problem) report.problems.push({ request, problem });
      if (response.statusCode === 202) {
        const id = (JSON.parse(response.body.toString('utf8')) as { id?: string }).id;
        if (id) created.push(id);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  report.elapsedMs = Date.now() - started;
  return report;
}
