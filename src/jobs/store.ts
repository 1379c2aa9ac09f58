import { randomUUID } from 'node:crypto';
import { createReadStream, readSync } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isMatrixQuantity, type Quantity } from '../compute/quantities/query.js';
import type { MatrixKind } from '../compute/operators/index.js';
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
  /** A curvature job's (POST /v1/jobs with "quantity"): what it computes, its progress and its result's size. */
  curvature?: CurvatureRecord;
}

export interface CurvatureRecord {
  quantity: Quantity;
  /** The matrix of a quantity other than ggn / fisher. */
  matrix?: MatrixKind;
  /** Operator products done / the most the quantity runs; those made without products stay at 0 until done. */
  progress: number;
  /** Its result on disk: the matrix (ggn, fisher) or its JSON document; until written, an upper bound. */
  resultBytes: number;
}

const FINISHED: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];
export const isFinished = (status: JobStatus) => FINISHED.includes(status);

/** The file operations the store uses; tests inject failures through it. */
export type StoreFs = Pick<typeof fsPromises, 'mkdir' | 'open' | 'readdir' | 'readFile' | 'rename' | 'rm' | 'stat' | 'writeFile'>;

/** A results directory operation that failed (disk full, permissions, a path that is not a directory). */
export class StorageError extends Error {
  constructor(
    readonly action: string,
    readonly cause: unknown,
  ) {
    super(`could not ${action}: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/** Every job directory holds this empty file: startup only ever touches directories that have it. */
export const JOB_MARKER = '.hessian-service-job';
/** The succeeded record, written once the matrix is complete: the result stays valid if job.json's last write fails. */
const COMPLETE = 'complete.json';
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A job directory being deleted is first renamed to this, so that a deletion is all or nothing. */
const DELETING = '.deleting';
const TEMPORARY = /^(job|result)\.json\..*\.tmp$/;
/** A curvature job's answer other than a matrix: its JSON document, as POST /v1/curvature sends it. */
const DOCUMENT = 'result.json';

/** Synchronous reads of copyTransposedStrip between two turns of the event loop. */
const READS_PER_TURN = 512;
/** What copyTransposedStrip keeps of the rows of one lower tensor (a window of their columns). */
const STRIP_WINDOW_BYTES = 8 * 2 ** 20;

export const matrixBytes = (size: number) => ResultStore.headerLength(size) + size * size * 4;

/** Whether the job's result is a JSON document (a curvature quantity other than a matrix) rather than a matrix file. */
export const hasDocument = (record: JobRecord): boolean => record.curvature !== undefined && !isMatrixQuantity(record.curvature.quantity);

/** Bytes the job's result takes, or will, on disk. */
export const resultBytes = (record: JobRecord): number => record.curvature?.resultBytes ?? matrixBytes(record.size);

/**
 * Results live on disk, not in the heap: RESULTS_DIR/<id>/hessian.npy (written row block by row block
 * as the workers deliver them) and RESULTS_DIR/<id>/job.json. The service only creates, and at startup
 * only looks into, directories named by a job id that contain its marker file; anything else in
 * RESULTS_DIR is left alone.
 */
export class ResultStore {
  private readonly open = new Map<string, FileHandle>();
  /** copyTransposedStrip's windows of rows being copied, by job, first row and row count. */
  private readonly strips = new Map<string, { start: number; width: number; values: Float32Array }>();
  /** Job directories known to exist with their marker. */
  private readonly marked = new Set<string>();

  constructor(
    readonly dir: string,
    private readonly fs: StoreFs = fsPromises,
  ) {}

  private jobDir = (id: string) => join(this.dir, id);
  matrixPath = (id: string) => join(this.jobDir(id), 'hessian.npy');
  documentPath = (id: string) => join(this.jobDir(id), DOCUMENT);
  private resultPath = (record: JobRecord) => (hasDocument(record) ? this.documentPath(record.id) : this.matrixPath(record.id));
  static headerLength = (size: number) => npyHeader(size, size).length;

  /**
   * Reads the jobs a previous run left. Results finished and not yet expired are served again; a job
   * that was queued or running when that run stopped is recorded as failed (interrupted), expiring
   * `ttlSeconds` later, unless its matrix was complete (then it succeeded). Stray temporary files and
   * half-deleted job directories are removed.
   */
  async recover(now = Date.now(), ttlSeconds = 0): Promise<JobRecord[]> {
    await this.fs.mkdir(this.dir, { recursive: true });
    const kept: JobRecord[] = [];
    for (const entry of await this.fs.readdir(this.dir, { withFileTypes: true })) {
      const deleting = entry.name.endsWith(DELETING);
      const id = deleting ? entry.name.slice(0, -DELETING.length) : entry.name;
      if (!entry.isDirectory() || !JOB_ID.test(id) || !(await this.exists(join(this.dir, entry.name, JOB_MARKER)))) continue;
      if (deleting) {
        await this.fs.rm(join(this.dir, entry.name), { recursive: true, force: true });
        continue;
      }
      this.marked.add(id);
      for (const name of await this.fs.readdir(this.jobDir(id))) {
        if (TEMPORARY.test(name)) await this.fs.rm(join(this.jobDir(id), name), { force: true });
      }
      const record = (await this.completed(id)) ?? (await this.readJson<JobRecord>(id, 'job.json'));
      if (!record) {
        // Ours but without a record: a synchronous request's matrix, or a job whose first write failed.
        await this.fs.rm(this.jobDir(id), { recursive: true, force: true });
        continue;
      }
      if (!isFinished(record.status)) {
        const started = record.status === 'running';
        Object.assign(record, {
          status: 'failed',
          finishedAt: new Date(now).toISOString(),
          // Expires like any finished job; without it the record would stay on disk for ever.
          expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
          error: {
            kind: 'interrupted',
            message: `the server stopped (killed or crashed) ${started ? 'before this job finished' : 'before this job started'}; submit it again`,
          },
        });
        await this.removeMatrix(id);
        await this.save(record);
      } else if (record.status === 'succeeded') {
        await this.save(record); // job.json agrees with complete.json again
      }
      if (record.expiresAt && Date.parse(record.expiresAt) <= now) await this.remove(id);
      else kept.push(record);
    }
    return kept;
  }

  /** The record of complete.json when the result it describes (matrix or document) is on disk at full size. */
  private async completed(id: string): Promise<JobRecord | null> {
    const record = await this.readJson<JobRecord>(id, COMPLETE);
    if (record?.status !== 'succeeded') return null;
    const stats = await this.fs.stat(this.resultPath(record)).catch(() => null);
    return stats?.size === resultBytes(record) ? record : null;
  }

  private async readJson<T>(id: string, name: string): Promise<T | null> {
    try {
      return JSON.parse(await this.fs.readFile(join(this.jobDir(id), name), 'utf8')) as T;
    } catch {
      return null;
    }
  }

  private exists = (path: string) => this.fs.stat(path).then(() => true, () => false);

  /** Creates the job's directory with its marker file (once). */
  private async prepare(id: string): Promise<void> {
    if (this.marked.has(id)) return;
    await this.fs.mkdir(this.jobDir(id), { recursive: true });
    await this.fs.writeFile(join(this.jobDir(id), JOB_MARKER), '');
    this.marked.add(id);
  }

  /** Writes job.json atomically (write then rename), so a crash never leaves half a record, nor a temporary file. */
  async save(record: JobRecord): Promise<void> {
    await this.writeAtomically(record.id, 'job.json', JSON.stringify(record));
  }

  private async writeAtomically(id: string, name: string, text: string): Promise<void> {
    await this.prepare(id);
    const path = join(this.jobDir(id), name);
    const temporary = `${path}.${randomUUID()}.tmp`;
    try {
      await this.fs.writeFile(temporary, text);
      await this.fs.rename(temporary, path);
    } catch (error) {
      await this.fs.rm(temporary, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** Writes a curvature job's JSON document (atomically, as job.json). */
  async writeDocument(id: string, text: string): Promise<void> {
    await this.writeAtomically(id, DOCUMENT, text);
  }

  readDocument(id: string): Promise<string> {
    return this.fs.readFile(this.documentPath(id), 'utf8');
  }

  documentStream(id: string) {
    return createReadStream(this.documentPath(id), { highWaterMark: 1 << 20 });
  }

  /**
   * Records that the matrix is complete and the job succeeded (complete.json, next to the matrix),
   * before job.json says so: a restart then serves the result even if job.json's update failed.
   */
  async markComplete(record: JobRecord): Promise<void> {
    await this.fs.writeFile(join(this.jobDir(record.id), COMPLETE), JSON.stringify(record));
  }

  /** Creates the .npy file with its header; rows are then written in place as they arrive. */
  async createMatrix(id: string, size: number): Promise<void> {
    await this.prepare(id);
    const handle = await this.fs.open(this.matrixPath(id), 'w+');
    try {
      const header = npyHeader(size, size);
      await handle.write(header, 0, header.length, 0);
      await handle.truncate(header.length + size * size * 4);
    } catch (error) {
      await handle.close();
      throw error;
    }
    this.open.set(id, handle);
  }

  async writeRows(id: string, size: number, firstRow: number, rows: Float32Array): Promise<void> {
    const handle = this.open.get(id);
    if (!handle) throw new Error(`matrix of job ${id} is not open`);
    const bytes = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
    await handle.write(bytes, 0, bytes.length, ResultStore.headerLength(size) + firstRow * size * 4);
  }

  async closeMatrix(id: string): Promise<void> {
    for (const key of this.strips.keys()) if (key.startsWith(`${id}/`)) this.strips.delete(key);
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
    const handle = this.open.get(id) ?? (await this.fs.open(this.matrixPath(id), 'r'));
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
   * of the matrix being written, into rows [count x size] at column r: a transpose of a strip. The rows
   * were just written and sit in the page cache; they are read synchronously, each a window of columns
   * wider than the strip (up to STRIP_WINDOW_BYTES for all of them), kept for the next blocks, whose
   * strips mostly lie in it: one read per row and window instead of one per row and block. The event
   * loop turns every READS_PER_TURN reads (thousands at once held up /health and the streams for 100 ms
   * on a loaded machine). The caller guarantees those rows are final (lower layers' blocks are done).
   */
  async copyTransposedStrip(id: string, size: number, firstRow: number, rowCount: number, column: number, count: number, rows: Float32Array, keepWindow = true): Promise<void> {
    const key = `${id}/${firstRow}/${rowCount}`;
    let window = keepWindow ? this.strips.get(key) : undefined;
    if (!window || column < window.start || column + count > window.start + window.width) {
      // keepWindow false: rows no later block asks for again as such (a span that grows block by block): the strip alone.
      const width = keepWindow ? Math.min(size - column, Math.max(count, Math.floor(STRIP_WINDOW_BYTES / 4 / rowCount))) : count;
      const values = new Float32Array(rowCount * width);
      const header = ResultStore.headerLength(size);
      for (let i = 0; i < rowCount; i++) {
        if (i % READS_PER_TURN === READS_PER_TURN - 1) await new Promise<void>((resolve) => setImmediate(resolve));
        const handle = this.open.get(id);
        if (!handle) throw new Error(`matrix of job ${id} is not open`);
        readSync(handle.fd, new Uint8Array(values.buffer, i * width * 4, width * 4), 0, width * 4, header + ((firstRow + i) * size + column) * 4);
      }
      window = { start: column, width, values };
      if (keepWindow) this.strips.set(key, window);
    }
    const { start, width, values } = window;
    for (let i = 0; i < rowCount; i++) {
      const from = i * width + column - start;
      for (let d = 0; d < count; d++) rows[d * size + firstRow + i] = values[from + d];
    }
  }

  /** Removes a result that will not be served (failed, cancelled, interrupted): the matrix, or a curvature job's document. */
  async removeMatrix(id: string): Promise<void> {
    await this.closeMatrix(id);
    await this.fs.rm(this.matrixPath(id), { force: true });
    await this.fs.rm(this.documentPath(id), { force: true });
  }

  /**
   * Deletes a job's directory, all or nothing: it is first renamed (atomic), so a failure leaves the
   * job whole and is thrown as a StorageError; what a failed removal after the rename leaves is
   * finished at the next start.
   */
  async remove(id: string): Promise<void> {
    await this.closeMatrix(id);
    if (!this.marked.has(id) && !(await this.exists(this.jobDir(id)))) return; // never written (a synchronous job)
    const doomed = this.jobDir(id) + DELETING;
    await this.fs.rm(doomed, { recursive: true, force: true }).catch(() => undefined); // left by an earlier failure
    try {
      await this.fs.rename(this.jobDir(id), doomed);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !(await this.exists(this.jobDir(id)))) {
        this.marked.delete(id);
        return;
      }
      throw new StorageError(`delete the files of job ${id}`, error);
    }
    this.marked.delete(id);
    await this.fs.rm(doomed, { recursive: true, force: true }).catch(() => undefined);
  }
}
