import { describe, expect, it } from 'vitest';
import { EXAMPLE_REQUEST, EXAMPLE_RESPONSE } from '../src/schemas/examples.js';
import { problemWith, runFuzz, type FuzzRequest, type FuzzResponse } from '../src/scripts/fuzz-cases.js';
import { relativeError } from './helpers.js';
import { useApp } from './api-helpers.js';

// Hostile clients (issue 7): thousands of mutated bodies into the real app, in this process through
// fastify's inject (no sockets). `npm run fuzz -- --count 20000` runs a longer one against a server
// process on 127.0.0.1 (src/scripts/fuzz.ts).
const SEED = 20261127;
const COUNT = 1500;
const ANSWER_TIMEOUT_MS = 60_000;

const t = useApp();

function send(request: FuzzRequest): Promise<FuzzResponse> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
  });
  const answer = t.app
    .inject({ method: request.method, url: request.url, headers: request.headers, payload: request.payload })
    .then((res) => ({ statusCode: res.statusCode, headers: res.headers, body: res.rawPayload }));
  return Promise.race([answer, timeout]).finally(() => clearTimeout(timer));
}

describe('fuzz: mutated requests from the README example and small valid bodies', () => {
  it(`${COUNT} requests: no 5xx, no crash, every JSON body strict JSON, every error body with its code`, { timeout: 300_000 }, async () => {
    const report = await runFuzz(send, { seed: SEED, count: COUNT, deadline: Date.now() + 240_000 });
    const shown = report.problems
      .slice(0, 10).map(({ request, problem }) => `${problem}\n  ${request.method} ${request.url} [${request.label}] ${request.payload?.slice(0, 400) ?? ''}`);
    expect(shown, `${report.problems.length} problems`).toEqual([]);
    expect(report.sent).toBe(COUNT);
    // The mix is meaningful: most are refused by validation, and some still compute.
    expect(report.statuses[400]).toBeGreaterThan(COUNT * 0.3);
    expect((report.statuses[200] ?? 0) + (report.statuses[202] ?? 0)).toBeGreaterThan(COUNT * 0.05);
  });

  it('afterwards the service still answers the README example exactly', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/hessian', payload: EXAMPLE_REQUEST });
    expect(res.statusCode).toBe(200);
    expect(relativeError(res.json().hessian.flat(), EXAMPLE_RESPONSE.hessian.flat())).toBeLessThan(1e-6);
    expect((await t.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
  });
});

describe('the fuzz check itself', () => {
  const answer = (statusCode: number, body: string, type = 'application/json; charset=utf-8'): FuzzResponse => ({
    statusCode,
    headers: { 'content-type': type },
    body: Buffer.from(body),
  });
  const result = (hessian: number[][]) => JSON.stringify({ size: hessian.length, loss: 1, gradient: hessian.map(() => 0), hessian });

  it('accepts a valid answer and a valid error', () => {
    expect(problemWith(answer(200, result([[1, 2], [2, 3]])))).toBeNull();
    expect(problemWith(answer(400, '{"error":"invalid_request","message":"model is required"}'))).toBeNull();
  });

  it.each([
    ['a 5xx', answer(503, '{"error":"x","message":"y"}')],
    ['Infinity in JSON', answer(200, '{"size":1,"loss":Infinity,"hessian":[[1]]}')],
    ['NaN in JSON', answer(200, '{"size":1,"loss":1,"hessian":[[NaN]]}')],
    ['an error without its code', answer(400, '{"message":"bad"}')],
    ['an error that is not JSON', answer(400, 'bad request', 'text/plain')],
    ['a matrix of the wrong shape', answer(200, result([[1, 2]]).replace('"size":1', '"size":2'))],
    ['an asymmetric matrix', answer(200, result([[1, 2], [-2, 3]]))],
    ['a binary matrix of the wrong length', { statusCode: 200, headers: { 'content-type': 'application/octet-stream', 'x-hessian-size': '2' }, body: Buffer.alloc(20) }],
  ])('refuses %s', (_name, response) => {
    expect(problemWith(response)).not.toBeNull();
  });
});
