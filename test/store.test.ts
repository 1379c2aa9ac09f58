/**
 * ResultStore on its own, with injected file-system failures (a root test process ignores chmod):
 * atomic records without stray temporary files, deletions that are all or nothing, a succeeded job that
 * stays succeeded when its last record write failed, and a startup that only touches its own directories.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOB_MARKER, ResultStore, StorageError, type JobRecord, type StoreFs } from '../src/jobs/store.js';
import { tempDirs } from './api-helpers.js';

const dirFor = tempDirs();

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

/** The real file system with `name` failing when `when(args)` holds. */
function failing(name: keyof StoreFs, when: (...args: any[]) => boolean = () => true): StoreFs {
  const real = fsPromises as any;
  return { ...fsPromises, [name]: (...args: any[]) => (when(...args) ? Promise.reject(enospc()) : real[name](...args)) } as StoreFs;
}

function record(id: string, status: JobRecord['status'], size = 3): JobRecord {
  return {
    id,
    status,
    createdAt: new Date().toISOString(),
    startedAt: status === 'queued' ? null : new Date().toISOString(),
    finishedAt: null,
    expiresAt: null,
    size,
    rowsDone: 0,
    parameters: [{ name: 'dense_1/kernel', shape: [3, 1], offset: 0, size }],
    loss: null,
    gradient: null,
    meta: null,
  };
}

/** A job's matrix written in full, rows 0..size-1 with value row*size+column. */
async function writeFullMatrix(store: ResultStore, id: string, size: number) {
  await store.createMatrix(id, size);
  await store.writeRows(id, size, 0, Float32Array.from({ length: size * size }, (_, i) => i));
  await store.closeMatrix(id);
}

describe('ResultStore', () => {
  it('a record write that fails (ENOSPC at rename) throws and leaves no job.json.*.tmp; the previous record stays', async () => {
    const dir = await dirFor();
    const id = randomUUID();
    await new ResultStore(dir).save(record(id, 'queued'));
    const store = new ResultStore(dir, failing('rename'));
    await expect(store.save(record(id, 'running'))).rejects.toThrow(/ENOSPC/);
    expect((await readdir(join(dir, id))).sort()).toEqual([JOB_MARKER, 'job.json'].sort());
    expect(JSON.parse(await readFile(join(dir, id, 'job.json'), 'utf8')).status).toBe('queued');
  });

  it('startup removes stray temporary files in its own job directories only', async () => {
    const dir = await dirFor();
    const id = randomUUID();
    const store = new ResultStore(dir);
    await store.save({ ...record(id, 'cancelled'), finishedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await writeFile(join(dir, id, `job.json.${randomUUID()}.tmp`), '{"half');
    const foreign = randomUUID();
    await mkdir(join(dir, foreign));
    await writeFile(join(dir, foreign, `job.json.${randomUUID()}.tmp`), 'not ours');
    const recovered = await new ResultStore(dir).recover();
    expect(recovered.map((r) => r.id)).toEqual([id]);
    expect((await readdir(join(dir, id))).sort()).toEqual([JOB_MARKER, 'job.json'].sort());
    expect(await readdir(join(dir, foreign))).toHaveLength(1);
  });

  it('a job whose matrix was complete is succeeded after a restart although job.json still says running', async () => {
    const dir = await dirFor();
    const store = new ResultStore(dir);
    const [done, unfinished, truncated] = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of [done, unfinished, truncated]) {
      await store.save(record(id, 'running'));
      await writeFullMatrix(store, id, 3);
    }
    const finishedAt = new Date().toISOString();
    const succeeded = (id: string): JobRecord => ({
      ...record(id, 'succeeded'),
      finishedAt,
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
      rowsDone: 3,
      loss: 1.5,
      gradient: [1, 2, 3],
      meta: { backend: 'cpu', dtype: 'float32', elapsedMs: 1 },
    });
    const doneRecord = succeeded(done);
    await store.markComplete(doneRecord);
    await store.markComplete(succeeded(truncated));
    await fsPromises.truncate(store.matrixPath(truncated), 100); // complete.json does not match the file

    const recovered = new Map((await new ResultStore(dir).recover(Date.now(), 60)).map((r) => [r.id, r]));
    expect(recovered.get(done)).toEqual(doneRecord);
    expect(JSON.parse(await readFile(join(dir, done, 'job.json'), 'utf8')).status).toBe('succeeded');
    const rows = await store.readRows(done, 3, 0, 3);
    expect(Array.from(rows)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    for (const id of [unfinished, truncated]) {
      expect(recovered.get(id)?.status).toBe('failed');
      expect(recovered.get(id)?.error).toEqual({ kind: 'interrupted', message: expect.stringMatching(/before this job finished/) });
      expect(existsSync(store.matrixPath(id))).toBe(false);
    }
  });

  it('a deletion that fails is all or nothing: StorageError, every file kept; the next one succeeds', async () => {
    const dir = await dirFor();
    const id = randomUUID();
    const store = new ResultStore(dir, failing('rename', (from: string) => from === join(dir, id)));
    await store.save(record(id, 'running'));
    await writeFullMatrix(store, id, 3);
    const before = (await readdir(join(dir, id))).sort();
    const error = await store.remove(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(new RegExp(`could not delete the files of job ${id}: ENOSPC`));
    expect((await readdir(join(dir, id))).sort()).toEqual(before);

    await new ResultStore(dir).remove(id);
    expect(await readdir(dir)).toEqual([]);
  });

  it('startup leaves what is not its own: foreign directories, UUID-named ones without the marker, files; finishes its own half-deleted ones', async () => {
    const dir = await dirFor();
    const orphan = randomUUID(); // ours (marker) but no record: a synchronous job's leftovers
    await mkdir(join(dir, orphan));
    await writeFile(join(dir, orphan, JOB_MARKER), '');
    await writeFile(join(dir, orphan, 'hessian.npy'), Buffer.alloc(64));
    const halfDeleted = `${randomUUID()}.deleting`;
    await mkdir(join(dir, halfDeleted));
    await writeFile(join(dir, halfDeleted, JOB_MARKER), '');
    const foreign = [randomUUID(), `${randomUUID()}.deleting`, 'photos', 'node_modules'];
    for (const name of foreign) {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'job.json'), 'not json'); // unparseable, still not ours
    }
    await writeFile(join(dir, 'notes.txt'), 'keep');

    expect(await new ResultStore(dir).recover()).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual([...foreign, 'notes.txt'].sort());
    for (const name of foreign) expect(await readFile(join(dir, name, 'job.json'), 'utf8')).toBe('not json');
  });
});

describe('copyTransposedStrip (the symmetric fill)', () => {
  /** Writes H[r][c] = r * size + c (every entry distinct), copies each block's strips, and checks them against that. */
  async function checkStrips(size: number, lowers: number[][], blocks: number[][]) {
    const store = new ResultStore(await dirFor());
    const id = randomUUID();
    await store.createMatrix(id, size);
    await store.writeRows(id, size, 0, Float32Array.from({ length: size * size }, (_, i) => i));
    for (const [lowerRow, lowerCount] of lowers) {
      for (const [row, count] of blocks) {
        const rows = new Float32Array(count * size).fill(-1);
        await store.copyTransposedStrip(id, size, lowerRow, lowerCount, row, count, rows);
        for (let d = 0; d < count; d++) {
          for (let r = 0; r < size; r++) {
            const expected = r >= lowerRow && r < lowerRow + lowerCount ? r * size + row + d : -1; // H[row + d][r] = H[r][row + d]
            if (rows[d * size + r] !== expected) throw new Error(`block ${row}+${d}, column ${r}: ${rows[d * size + r]} instead of ${expected}`);
          }
        }
      }
    }
    await store.closeMatrix(id);
    await expect(store.copyTransposedStrip(id, size, 0, 1, size - 1, 1, new Float32Array(size))).rejects.toThrow(/not open/);
  }

  it('copies the transposed strip of rows on disk for every block, like a plain transpose', async () => {
    // A "layer" from row 300 on with lower tensors [0, 300), [0, 12) and [12, 300); uneven blocks, one out of order (two workers).
    await checkStrips(700, [[0, 300], [0, 12], [12, 288]], [[300, 7], [307, 64], [500, 100], [371, 129], [600, 100]]);
  });

  it('past the window it keeps (8 MiB of the lower rows), and before it, it reads the rows again', async () => {
    // 1500 lower rows: a window of 1398 columns, [1500, 2898); the block at 2800 goes past it, the one at 2000 before the next.
    await checkStrips(2900, [[0, 1500]], [[1500, 64], [2800, 100], [2000, 64]]);
  });
});
