import { randomUUID } from 'node:crypto';
import { createReadStream, readSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobStatus, ParameterEntry, ResultMeta } from '../schemas/api.js';
import { npyHeader } from './npy.js';

/** What is kept of a job on disk, next to its matrix; enough to serve it again after a restart. */
export interface JobRecord {
  id: string;
  status: JobStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  expiresAt: string | null;
  size: number;
  rowsDone: number;
  parameters: ParameterEntry[];
  loss: number | null;
  gradient: number[] | null;
  meta: ResultMeta | null;
  error?: { kind: string; message: string };
  /** With API_KEYS: a digest of the key that created the job; only that key sees it. */
  owner?: string;
}

const FINISHED: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];
export const isFinished = (status: JobStatus) => FINISHED.includes(status);

/**
 * Results live on disk, not in the heap: RESULTS_DIR/<id>/hessian.npy (written row block by row block
 * as the workers deliver them) and RESULTS_DIR/<id>/job.json.
 */
export class ResultStore {
  private readonly open = new Map<string, FileHandle>();

  constructor(readonly dir: string) {}

  private jobDir = (id: string) => join(this.dir, id);
  matrixPath = (id: string) => join(this.jobDir(id), 'hessian.npy');
  static headerLength = (size: number) => npyHeader(size, size).length;

  /**
   * Reads the jobs a previous run left. Results finished and not yet expired are served again; a job
   * that was queued or running when that run stopped is recorded as failed, expiring `ttlSeconds` later.
   */
  async recover(now = Date.now(), ttlSeconds = 0): Promise<JobRecord[]> {
    await mkdir(this.dir, { recursive: true });
    const kept: JobRecord[] = [];
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      let record: JobRecord;
      try {
        record = JSON.parse(await readFile(join(this.dir, entry.name, 'job.json'), 'utf8'));
      } catch {
        await rm(join(this.dir, entry.name), { recursive: true, force: true });
        continue;
      }
      if (!isFinished(record.status)) {
        const finishedAt = new Date(now).toISOString();
        Object.assign(record, {
          status: 'failed',
          finishedAt,
          // Expires like any finished job; without it the record would stay on disk for ever.
          expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
          error: { kind: 'interrupted', message: 'the server stopped before this job finished' },
        });
        await rm(this.matrixPath(record.id), { force: true });
        await this.save(record);
      }
      if (record.expiresAt && Date.parse(record.expiresAt) <= now) await this.remove(record.id);
      else kept.push(record);
    }
    return kept;
  }

  /** Writes job.json atomically (write then rename), so a crash never leaves half a record. */
  async save(record: JobRecord): Promise<void> {
    await mkdir(this.jobDir(record.id), { recursive: true });
    const path = join(this.jobDir(record.id), 'job.json');
    const temporary = `${path}.${randomUUID()}.tmp`;
    await writeFile(temporary, JSON.stringify(record));
    await rename(temporary, path);
  }

  /** Creates the .npy file with its header; rows are then written in place as they arrive. */
  async createMatrix(id: string, size: number): Promise<void> {
    await mkdir(this.jobDir(id), { recursive: true });
    const handle = await open(this.matrixPath(id), 'w+');
    const header = npyHeader(size, size);
    await handle.write(header, 0, header.length, 0);
    await handle.truncate(header.length + size * size * 4);
    this.open.set(id, handle);
  }

  async writeRows(id: string, size: number, firstRow: number, rows: Float32Array): Promise<void> {
    const handle = this.open.get(id);
    if (!handle) throw new Error(`matrix of job ${id} is not open`);
    const bytes = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
    await handle.write(bytes, 0, bytes.length, ResultStore.headerLength(size) + firstRow * size * 4);
  }

  async closeMatrix(id: string): Promise<void> {
    const handle = this.open.get(id);
    this.open.delete(id);
    await handle?.close();
  }

  /** Bytes [start, end) of the .npy file (end exclusive). */
  readStream(id: string, start = 0, end?: number) {
    return createReadStream(this.matrixPath(id), { start, end: end === undefined ? undefined : end - 1, highWaterMark: 1 << 20 });
  }

  /** Rows [first, first+count) as float32 values, read from the file. */
  async readRows(id: string, size: number, first: number, count: number): Promise<Float32Array> {
    const handle = this.open.get(id) ?? (await open(this.matrixPath(id), 'r'));
    try {
      const out = new Float32Array(count * size);
      await handle.read(Buffer.from(out.buffer), 0, out.byteLength, ResultStore.headerLength(size) + first * size * 4);
      return out;
    } finally {
      if (!this.open.has(id)) await handle.close();
    }
  }

  /**
   * Copies, for each row r in [firstRow, firstRow + rowCount), the values at columns [column, column + count)
   * of the matrix being written, into rows [count x size] at column r: a transpose of a strip. Reads are
   * synchronous: the rows were just written and sit in the page cache, and one block needs at most P
   * small reads.
   */
  copyTransposedStrip(id: string, size: number, firstRow: number, rowCount: number, column: number, count: number, rows: Float32Array): void {
    const handle = this.open.get(id);
    if (!handle) throw new Error(`matrix of job ${id} is not open`);
    const strip = new Float32Array(count);
    const bytes = Buffer.from(strip.buffer);
    const header = ResultStore.headerLength(size);
    for (let r = firstRow; r < firstRow + rowCount; r++) {
      readSync(handle.fd, bytes, 0, bytes.length, header + (r * size + column) * 4);
      for (let d = 0; d < count; d++) rows[d * size + r] = strip[d];
    }
  }

  async removeMatrix(id: string): Promise<void> {
    await this.closeMatrix(id);
    await rm(this.matrixPath(id), { force: true });
  }

  async remove(id: string): Promise<void> {
    await this.closeMatrix(id);
    await rm(this.jobDir(id), { recursive: true, force: true });
  }
}
