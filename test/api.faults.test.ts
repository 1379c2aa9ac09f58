/**
 * Faults on the server's side: a results directory that cannot be written fails the request with a
 * JSON 500 and a log line, never a crash, and the service goes on answering.
 */
import { rm, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { useApp } from './api-helpers.js';
import { fixtures } from './helpers.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
// No small lane: synchronous requests go through the disk here (a small lane answer needs none).
const t = useApp({ SMALL_JOB_FLOPS: 0 });

it('RESULTS_DIR replaced by a file mid-run: 500 internal for the request, the process and /health stay up', async () => {
  await rm(t.dir, { recursive: true, force: true });
  await writeFile(t.dir, 'not a directory');
  try {
    for (const url of ['/v1/hessian', '/v1/jobs']) {
      const res = await t.http().post(url).send(seed.request);
      expect(res.status).toBe(500);
      if (url === '/v1/hessian') {
        expect(res.body.error).toBe('internal');
      } else {
        // A job is recorded on disk when accepted; one that cannot be is refused, saying why.
        expect(res.body.error).toBe('storage_error');
        expect(res.body.message).toMatch(/record the new job.*(ENOTDIR|not a directory)/i);
      }
    }
    expect((await t.http().get('/health')).status).toBe(200);
  } finally {
    await rm(t.dir, { force: true });
  }
});
