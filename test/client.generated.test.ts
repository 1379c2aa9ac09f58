/**
 * A client generated from openapi.yaml (openapi-typescript types + openapi-fetch) type-checks and,
 * against a running service, gets the seed example's 4x4 Hessian.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import openapiTS, { astToString } from 'openapi-typescript';
import { beforeAll, expect, it } from 'vitest';
import { OPENAPI_FILE } from '../src/openapi.js';
import { EXAMPLE_REQUEST } from '../src/schemas/examples.js';
import { useApp } from './api-helpers.js';
import { relativeError } from './helpers.js';

const GENERATED = new URL('./generated/hessian-api.d.ts', import.meta.url);
const t = useApp({ WORKERS: 1 });

beforeAll(async () => {
  mkdirSync(new URL('.', GENERATED), { recursive: true });
  writeFileSync(GENERATED, astToString(await openapiTS(readFileSync(OPENAPI_FILE, 'utf8'))));
  await t.app.listen({ port: 0, host: '127.0.0.1' });
});

it('the generated types are complete enough for a typed call (tsc on test/client)', async () => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const project = fileURLToPath(new URL('./client/tsconfig.json', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [tsc, '-p', project]).catch((error) => ({ stdout: `${error.stdout}${error.stderr}` }));
  expect(stdout).toBe('');
  // The operations carry their operationIds into the generated types.
  const types = readFileSync(GENERATED, 'utf8');
  for (const id of ['computeHessian', 'createJob', 'getJob', 'getJobResult', 'streamJob', 'deleteJob']) expect(types).toContain(`${id}: {`);
});

it('calls /v1/hessian with the seed example and gets the 4x4 matrix', async () => {
  // Not a literal: the project type-check (tsconfig.test.json) must not need the generated types.
  const clientModule = './client/hessian-client.js';
  const { computeHessian } = await import(clientModule);
  const { port } = t.app.server.address() as AddressInfo;
  const result = await computeHessian(`http://127.0.0.1:${port}`, structuredClone(EXAMPLE_REQUEST) as never);
  expect(result.size).toBe(4);
  expect(result.hessian).toHaveLength(4);
  // Independent float64 reference: H = 2/(B·units) · kron(XᵀX, I₂) for a linear layer under MSE.
  const { x } = EXAMPLE_REQUEST.data;
  const xtx = [0, 1].map((i) => [0, 1].map((j) => x.reduce((sum, row) => sum + row[i] * row[j], 0)));
  const expected = [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => (r % 2 === c % 2 ? ((2 / (x.length * 2)) * xtx[r >> 1][c >> 1]) : 0)));
  expect(relativeError(result.hessian.flat(), expected.flat())).toBeLessThan(1e-6);
});
