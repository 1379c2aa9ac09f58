import { randomUUID } from 'node:crypto';
import {
  DEFAULT_MEMORY_BUDGET_BYTES,
  planRequest,
  planRowBlocks,
  requestBytes,
  symmetricColumns,
  type BackendName,
  type EngineRequest,
  type HessianMethod,
  type PlacedTensor,
  type RequestPlan,
} from '../compute/index.js';
import { MessageChannel } from 'node:worker_threads';
import { queryBytes, type CurvatureQuery } from '../compute/quantities/query.js';
import { curvatureDocumentText, type CurvatureHead } from './curvature-results.js';
import type { ComputePool } from './pool.js';
import { isFailure, needsRequest, type CurvatureAnswer, type RowsAnswer, type Summary, type WorkerFailure } from './protocol.js';
import { isFinished, matrixBytes, resultBytes, StorageError, type JobRecord, type ResultStore } from './store.js';
import { SpareBuffers } from './spare-buffers.js';
import { SymmetricFill } from './symmetric-fill.js';

/**
 * Takes a whole row block; true when it holds the rows to send them (then they need not be on disk for
 * it). A listener that holds them calls `release` once it is done with them (sent and let go by the
 * socket), so that a later block may be written into their buffer; one that never calls it leaves
 * them to the garbage collector.
 */
export type RowListener = (firstRow: number, rows: Float32Array, release: () => void) => boolean;

/** Memory the symmetric fill of the running job may hold when none is given (the service passes SYMMETRIC_FILL_MEMORY_MB). */
const DEFAULT_FILL_MEMORY_BYTES = 512 * 2 ** 20;

/**
 * The spare buffers structured jobs keep for their threads (see SpareBuffers): a few blocks' worth in
 * flight. They outlive a job by SPARE_BUFFER_KEEP_MS, for the blocks of the next one, which would
 * otherwise start on new buffers: a job of 13 blocks on 2 threads found spares for only 5.
 */
const SPARE_BUFFER_BYTES = 32 * 2 ** 20;
const SPARE_BUFFER_KEEP_MS = 2000;

export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the job queue is full (${limit} jobs waiting); retry later`);
  }
}

export class ClientQueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`this client already has ${limit} jobs queued or running (MAX_JOBS_PER_CLIENT); retry when one has finished`);
  }
}

/** Who submits a job: `id` is what the per-client share counts; `owner`, when set, alone may see the job. */
export interface Submitter {
  id: string;
  owner?: string;
}

export class ShuttingDownError extends Error {
  constructor() {
    super('the server is shutting down and takes no new jobs');
  }
}

/** The queued requests would hold more than MAX_QUEUED_BYTES. */
export class QueuedBytesFullError extends QueueFullError {
  constructor(needed: number, held: number, limit: number) {
    super(0);
    this.message = `the queued requests hold ${held} bytes; this one needs ${needed} more and MAX_QUEUED_BYTES is ${limit}; retry later`;
  }
}

/** A result, or an uploaded model, would not fit in MAX_RESULTS_BYTES next to the results and models held. */
export class ResultsQuotaError extends Error {
  constructor(needed: number, used: number, limit: number, what: 'result' | 'model' = 'result') {
    super(
      `the ${what} needs ${needed} bytes on disk but ${used} of the MAX_RESULTS_BYTES quota of ${limit} bytes are held by other results and stored models; ` +
        'delete finished jobs (DELETE /v1/jobs/:id) or models (DELETE /v1/models/:id), or retry once they have expired',
    );
  }
}

/** Why an unfinished job was cancelled: recorded in its error message. */
export type CancelReason = 'request' | 'shutdown' | 'disconnected';
const CANCEL_MESSAGES: Record<CancelReason, (started: boolean) => string> = {
  request: () => 'cancelled by a DELETE request',
  shutdown: (started) => (started ? 'cancelled: the server shut down and its grace period ended before the job finished' : 'cancelled: the server shut down before the job started'),
  disconnected: () => 'cancelled: the client closed the connection before the answer was ready',
};

/** A curvature quantity run as a job (POST /v1/jobs with "quantity"), as its admission planned it. */
export interface CurvatureWork {
  query: CurvatureQuery;
  /** The head of its JSON document (see curvatureDocument). */
  head: CurvatureHead;
  /** Operator products it runs at most (productBudget): what its progress counts towards. */
  products: number;
  /** Bytes its result takes on disk at most: the matrix, or an upper bound of its JSON document. */
  resultBytes: number;
}

/** A job the manager knows: its persisted record plus what only lives while the server runs. */
export interface Job {
  record: JobRecord;
  request: EngineRequest | null;
  /** Submitter.id, for the per-client share of the queue (not kept on disk: only unfinished jobs count). */
  client?: string;
  /** The tensors the matrix is over, with their layers (record.parameters is the public part). */
  parameters: PlacedTensor[];
  /** Rows per row block and the path: the admission's choice, so that a task fits MAX_WORKER_MEMORY_MB. */
  blockSize: number;
  method: HessianMethod;
  /** On the structured path, the batch chunk of its factors when the whole batch's do not fit (planHessian). */
  batchChunk?: number;
  /** Rows [0, contiguousRows) are done: on disk, or held by the synchronous answer's stream (see onRows). What a stream may send. */
  contiguousRows: number;
  /** The backend the job's summary ran on (every block runs on it), once known: a stream's headers name it. */
  backend?: BackendName;
  cancelled: boolean;
  /** Aborts the job's tasks in flight (piscina ends their threads and starts others). */
  abort: AbortController;
  listeners: Set<() => void>;
  /** Called with each row block once it is whole (see onRows); each says whether it holds the rows to send them. */
  rowListeners: Set<RowListener>;
  /** The last write of job.json: writes of one job run one after another. */
  saved: Promise<void>;
  /** A synchronous request's job: never recorded in job.json, deleted once answered. */
  ephemeral: boolean;
  /** Resolves once nothing of this job is in flight (blocks, matrix removal, finishing writes). */
  settled: Promise<void>;
  /** A curvature job's work, while it is queued or running. */
  curvature?: CurvatureWork;
}

export interface JobEvents {
  rowsComputed?(count: number): void;
  /** A job record could not be written (disk full, permissions); the job goes on in memory. */
  storageError?(error: unknown, jobId: string): void;
}

/**
 * Runs Hessian jobs first in, first out, one at a time, each spread over every worker of the pool
 * (row blocks are handed out as workers free up). Rows go to the result store as they arrive. A
 * curvature job runs whole in one task, which reports its progress over a MessagePort, and its result
 * (a matrix, or a JSON document) is written once it is done.
 */
export class JobManager {
  private readonly jobs = new Map<string, Job>();
  private readonly queue: Job[] = [];
  private readonly spareBuffers = new SpareBuffers(SPARE_BUFFER_BYTES);
  private dropSpares?: NodeJS.Timeout;
  private running: Job | null = null;
  private accepting = true;
  private idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: ResultStore,
    private readonly pool: ComputePool,
    private readonly options: {
      maxQueued: number;
      ttlSeconds: number;
      memoryBudgetBytes?: number;
      maxResultsBytes?: number;
      maxQueuedBytes?: number;
      timeoutSeconds?: number;
      maxPerClient?: number;
      /** Memory the running job's symmetric fill may hold (see SymmetricFill); 0: every value from the file. */
      fillMemoryBytes?: number;
      /** Bytes held on disk under MAX_RESULTS_BYTES besides the results (the stored models). */
      otherStoredBytes?: () => number;
    },
    private readonly events: JobEvents = {},
  ) {}

  async init(): Promise<void> {
    for (const record of await this.store.recover(Date.now(), this.options.ttlSeconds)) {
      const contiguousRows = record.status === 'succeeded' ? record.size : 0;
      this.jobs.set(record.id, this.newJob(record, null, [], { blockSize: 1, method: 'rOperator' }, contiguousRows, false));
    }
  }

  private newJob(
    record: JobRecord,
    request: EngineRequest | null,
    parameters: PlacedTensor[],
    { blockSize, method, batchChunk }: Pick<RequestPlan, 'blockSize' | 'method' | 'batchChunk'>,
    contiguousRows: number,
    ephemeral: boolean,
  ): Job {
    return { record, request, parameters, blockSize, method, batchChunk, contiguousRows, cancelled: false, abort: new AbortController(), listeners: new Set(), rowListeners: new Set(), saved: Promise.resolve(), ephemeral, settled: Promise.resolve() };
  }

  /** Bytes the queued requests hold (their tensors, as typed arrays). */
  get queuedBytes(): number {
    return this.queue.reduce((n, job) => n + (job.request ? heldBytes(job.request, job.curvature) : 0), 0);
  }

  /**
   * Bytes on disk held by results that exist or will (queued, running, succeeded), except answered
   * synchronous ones, which are being deleted.
   */
  get resultsBytes(): number {
    let total = 0;
    for (const { record, ephemeral } of this.jobs.values()) {
      const holds = ephemeral ? !isFinished(record.status) : record.status !== 'failed' && record.status !== 'cancelled';
      if (holds) total += resultBytes(record);
    }
    return total;
  }

  /**
   * Queues a validated, admitted request; its cost estimate (made here when not given) sets the block
   * size. Throws QueueFullError when MAX_QUEUED_JOBS are already waiting, and ResultsQuotaError when
   * its matrix would not fit in MAX_RESULTS_BYTES. `ephemeral`: a synchronous request's job, which is
   * not recorded on disk (see Job.ephemeral). `submitter`: who asks; ClientQueueFullError when it
   * already has `maxPerClient` jobs queued or running, and an owner, if any, alone may see the job.
   * `curvature`: the job computes that quantity instead of the Hessian.
   */
  submit(
    request: EngineRequest,
    cost?: Pick<RequestPlan, 'parameters' | 'size' | 'blockSize' | 'method'>,
    { ephemeral = false, submitter, curvature }: { ephemeral?: boolean; submitter?: Submitter; curvature?: CurvatureWork } = {},
  ): Job {
    if (!this.accepting) throw new ShuttingDownError();
    if (this.queue.length >= this.options.maxQueued) throw new QueueFullError(this.options.maxQueued);
    const { maxPerClient } = this.options;
    if (submitter && maxPerClient && this.unfinishedOf(submitter.id) >= maxPerClient) throw new ClientQueueFullError(maxPerClient);
    const bytes = heldBytes(request, curvature);
    const maxQueuedBytes = this.options.maxQueuedBytes ?? Infinity;
    if (this.queuedBytes + bytes > maxQueuedBytes) throw new QueuedBytesFullError(bytes, this.queuedBytes, maxQueuedBytes);
    const plan = cost ?? planRequest(request, this.options.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES);
    const { parameters, size } = plan;
    const needed = curvature ? curvature.resultBytes : matrixBytes(size);
    const limit = this.options.maxResultsBytes ?? Infinity;
    const used = this.resultsBytes + (this.options.otherStoredBytes?.() ?? 0);
    if (used + needed > limit) throw new ResultsQuotaError(needed, used, limit);
    const record: JobRecord = {
      id: randomUUID(),
      status: 'queued',
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
      expiresAt: null,
      size,
      rowsDone: 0,
      parameters: parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size })),
      loss: null,
      gradient: null,
      meta: null,
      ...(submitter?.owner ? { owner: submitter.owner } : {}),
      ...(curvature ? { curvature: { quantity: curvature.head.quantity, ...(curvature.head.matrix ? { matrix: curvature.head.matrix } : {}), progress: 0, resultBytes: needed } } : {}),
    };
    const job: Job = { ...this.newJob(record, request, parameters, plan, 0, ephemeral), client: submitter?.id, ...(curvature ? { curvature } : {}) };
    this.jobs.set(record.id, job);
    this.queue.push(job);
    this.pump();
    return job;
  }

  /**
   * submit(), then waits until the job's record is on disk (recorded when accepted, so that after any
   * stop a restart reports it, never a 404). If it cannot be written the job is dropped and a
   * StorageError thrown: a job the server cannot record would be lost by a restart.
   */
  async submitRecorded(request: EngineRequest, cost?: Parameters<JobManager['submit']>[1], submitter?: Submitter, curvature?: CurvatureWork): Promise<Job> {
    const job = this.submit(request, cost, { submitter, curvature });
    const failure = await this.persist(job);
    if (failure) {
      this.cancel(job, 'request');
      this.jobs.delete(job.record.id);
      await job.settled;
      await job.saved;
      await this.store.remove(job.record.id).catch(() => undefined);
      throw new StorageError('record the new job in RESULTS_DIR', failure);
    }
    return job;
  }

  get(id: string): Job | undefined {
    const job = this.jobs.get(id);
    if (job?.record.expiresAt && Date.parse(job.record.expiresAt) <= Date.now()) {
      void this.forget(job);
      return undefined;
    }
    return job;
  }

  /** False once shutdown() began: no new work of any kind is taken. */
  get acceptingWork(): boolean {
    return this.accepting;
  }

  /** Jobs of this client queued or running (a cancelled job whose blocks are still in flight no longer counts). */
  private unfinishedOf(client: string): number {
    const running = this.running && !isFinished(this.running.record.status) ? [this.running] : [];
    return [...this.queue, ...running].filter((job) => job.client === client).length;
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  countByStatus(): Record<string, number> {
    const counts: Record<string, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const job of this.jobs.values()) counts[job.record.status]++;
    return counts;
  }

  /** Resolves at the job's next progress or state change. */
  changed(job: Job): Promise<void> {
    return new Promise((resolve) => {
      const listener = () => {
        job.listeners.delete(listener);
        resolve();
      };
      job.listeners.add(listener);
    });
  }

  /**
   * Hands `listener` every row block of the job once it is whole (lower-layer columns filled), in the
   * order blocks finish, before it is written: a stream may send them without reading them back. A
   * synchronous request's job (ephemeral, whose stream is its only reader) does not write the rows its
   * listener holds, unless the symmetric fill of a later block reads them back from the file. Returns
   * the unsubscribe.
   */
  onRows(job: Job, listener: RowListener): () => void {
    job.rowListeners.add(listener);
    return () => job.rowListeners.delete(listener);
  }

  /** Resolves when the job has finished, whatever the outcome. */
  async finished(job: Job): Promise<JobRecord> {
    while (!isFinished(job.record.status)) await this.changed(job);
    return job.record;
  }

  /** Cancels an unfinished job (see stop()). */
  cancel(job: Job, reason: CancelReason): void {
    this.stop(job, 'cancelled', { kind: 'cancelled', message: CANCEL_MESSAGES[reason](job.record.status === 'running') });
  }

  /**
   * Ends an unfinished job now: a queued one never starts; a running one's tasks in flight are aborted,
   * which ends their threads (a task cannot be interrupted otherwise) and piscina starts others.
   */
  private stop(job: Job, status: 'cancelled' | 'failed', error: NonNullable<JobRecord['error']>): void {
    if (isFinished(job.record.status)) return;
    job.cancelled = true;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    if (this.running === job) job.abort.abort();
    const finishing = this.finish(job, status, error);
    job.settled = Promise.all([job.settled, finishing]).then(() => undefined);
  }

  /**
   * Writes job.json after any earlier write of the same job; a failure is reported, not thrown, and
   * resolved as the error (undefined when written).
   */
  private async persist(job: Job): Promise<unknown> {
    if (job.ephemeral) return undefined;
    const snapshot = { ...job.record };
    const write = job.saved.then(() => this.store.save(snapshot)).then(
      () => undefined,
      (error: unknown) => {
        this.events.storageError?.(error, snapshot.id);
        return error ?? new Error('unknown storage error');
      },
    );
    job.saved = write.then(() => undefined);
    return write;
  }

  /**
   * Deletes a finished job and its files, once nothing of it is in flight. Throws a StorageError when
   * the files cannot be deleted; the job then stays, as it is on disk.
   */
  async forget(job: Job): Promise<void> {
    await job.settled;
    await job.saved;
    await this.store.remove(job.record.id);
    this.jobs.delete(job.record.id);
    this.notify(job);
  }

  /** Deletes every finished result whose TTL has passed; one that cannot be deleted is tried again next time. */
  async sweep(now = Date.now()): Promise<void> {
    for (const job of [...this.jobs.values()]) {
      if (job.record.expiresAt && Date.parse(job.record.expiresAt) <= now) {
        await this.forget(job).catch((error) => this.events.storageError?.(error, job.record.id));
      }
    }
  }

  /**
   * Graceful shutdown: no new jobs; queued ones are cancelled; the running one may finish within
   * `graceMs`, after which it is cancelled. Finished results stay on disk for the next start.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.accepting = false;
    for (const job of [...this.queue]) this.cancel(job, 'shutdown');
    const running = this.running;
    if (running) {
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([this.finished(running), timer]);
      this.cancel(running, 'shutdown');
    }
    await this.idle;
    await Promise.all([...this.jobs.values()].map((job) => job.settled.then(() => job.saved)));
  }

  private pump(): void {
    if (this.running || !this.queue.length) return;
    const job = this.queue.shift()!;
    this.running = job;
    this.idle = this.execute(job)
      .catch((error) => this.finish(job, 'failed', { kind: 'internal', message: (error as Error).message }))
      // Only now, with no block in flight, can a failed or cancelled job's partial matrix go.
      .then(() => (job.record.status === 'succeeded' ? undefined : this.store.removeMatrix(job.record.id)))
      .catch((error) => this.events.storageError?.(error, job.record.id))
      .finally(() => {
        this.running = null;
        this.pump();
      });
    job.settled = Promise.all([job.settled, this.idle]).then(() => undefined);
  }

  private async execute(job: Job): Promise<void> {
    const { record } = job;
    const started = performance.now();
    record.status = 'running';
    record.startedAt = new Date().toISOString();
    await this.persist(job); // so that a crash leaves a record the next start marks interrupted
    this.notify(job);
    const timeoutSeconds = this.options.timeoutSeconds ?? Infinity;
    const timeout = Number.isFinite(timeoutSeconds)
      ? setTimeout(() => {
          const message = `the job ran longer than JOB_TIMEOUT_SECONDS (${timeoutSeconds} s) and was stopped`;
          this.stop(job, 'failed', { kind: 'timeout', message });
        }, timeoutSeconds * 1000)
      : undefined;
    try {
      await (job.curvature ? this.computeCurvature(job, job.curvature) : this.computeRows(job, started));
    } finally {
      clearTimeout(timeout);
    }
  }

  /**
   * A curvature quantity, whole in one task. Its progress comes over a MessagePort moved to the worker
   * with the task (the count of each batch of operator products; piscina has no other channel from a
   * running task), and its result is written once done: the matrix of ggn / fisher as a Hessian's, any
   * other quantity's JSON document as POST /v1/curvature would send it.
   */
  private async computeCurvature(job: Job, work: CurvatureWork): Promise<void> {
    const { record } = job;
    const progress = record.curvature!;
    const channel = new MessageChannel();
    let done = 0;
    channel.port1.on('message', (count: number) => {
      done += count;
      progress.progress = work.products ? Math.min(1, done / work.products) : 0;
      this.notify(job);
    });
    let answer;
    try {
      const task = { kind: 'curvature' as const, request: job.request!, query: work.query, blockSize: job.blockSize, progress: channel.port2 };
      answer = await this.pool.run(task, job.abort.signal, [channel.port2]);
    } finally {
      channel.port1.close();
    }
    if (isFailure(answer)) return this.finish(job, 'failed', answer.error);
    if (job.cancelled) return;
    const { loss, meta, fields, matrix } = answer as CurvatureAnswer;
    Object.assign(record, { loss, meta });
    if (matrix) {
      await this.store.createMatrix(record.id, record.size);
      await this.store.writeRows(record.id, record.size, 0, matrix);
      await this.store.closeMatrix(record.id);
    } else {
      const document = await curvatureDocumentText(work.head, loss, fields, meta);
      await this.store.writeDocument(record.id, document);
      progress.resultBytes = Buffer.byteLength(document);
    }
    if (job.cancelled) return;
    progress.progress = 1;
    await this.finish(job, 'succeeded');
  }

  /** The summary, then every row block, spread over the pool's threads and written as they come back. */
  private async computeRows(job: Job, started: number): Promise<void> {
    const { record } = job;
    const { signal } = job.abort;
    const summary = await this.pool.run({ kind: 'summary', jobId: record.id, request: job.request!, method: job.method, batchChunk: job.batchChunk }, signal);
    if (isFailure(summary)) return this.finish(job, 'failed', summary.error);
    // Cancelled while the summary ran: finish() has already cleaned up; create no matrix file.
    if (job.cancelled) return;
    const { loss, gradient, backend } = summary as Summary;
    job.backend = backend.backend;
    const { parameters } = job;
    Object.assign(record, { loss, gradient });
    await this.store.createMatrix(record.id, record.size);

    const blocks = planRowBlocks(parameters, job.blockSize, job.method === 'structured'); // in row order, as streams send them
    const layerOf = (index: number) => parameters[blocks[index].tensor].layer;
    // Computed from the lowest layer up, so that a block's columns of lower layers (and on the structured
    // path of its own layer's earlier rows) can be copied, by symmetry, from rows already on disk instead
    // of computed (see symmetricColumns).
    const order = blocks.map((_, i) => i).sort((a, b) => layerOf(a) - layerOf(b) || a - b);
    const done = new Array<boolean>(blocks.length).fill(false);
    const fill = new SymmetricFill(blocks, (block) => symmetricColumns(parameters, block, job.method), this.options.fillMemoryBytes ?? DEFAULT_FILL_MEMORY_BYTES);
    // Only the structured path writes its rows into spares (the others make their own arrays).
    const spares = job.method === 'structured' ? this.spareBuffers : null;
    clearTimeout(this.dropSpares);
    let next = 0;
    let firstPending = 0;
    let failure: WorkerFailure['error'] | null = null;
    const fail = (error: WorkerFailure['error']) => {
      failure ??= error;
      this.notify(job); // wakes loops waiting for lower layers
    };
    /** Keeps a block's transposes, waits for the rows its spans name, fills and writes it; failures fail the job. */
    const finishBlock = async (index: number, { rows, tiles }: RowsAnswer) => {
      const block = blocks[index];
      try {
        fill.keep(index, tiles);
        this.notify(job); // wakes blocks waiting for these rows
        while (!fill.ready(index, (source) => done[source]) && !job.cancelled && !failure) await this.changed(job);
        if (job.cancelled || failure) return;
        for (const span of await fill.fill(index, rows, (tile) => spares?.give(tile.buffer))) {
          await this.store.copyTransposedStrip(record.id, record.size, span.offset, span.count, block.row, block.count, rows, !span.partial);
        }
        // The rows' buffer becomes a spare once written (or not to be) and let go by every listener that held it.
        let holders = 0;
        let writing = true;
        const recycle = () => {
          if (holders === 0 && !writing) spares?.give(rows.buffer);
        };
        for (const listener of job.rowListeners) {
          let released = false;
          const release = () => {
            if (released) return;
            released = true;
            holders--;
            recycle();
          };
          holders++;
          if (!listener(block.row, rows, release)) release();
        }
        const held = holders > 0;
        // Writing the rows only to delete them after the answer cost a synchronous P = 6154 answer some
        // 70 ms of CPU (151 MB into the page cache) on a 2-core machine.
        if (!held || !job.ephemeral || fill.readBack(index)) await this.store.writeRows(record.id, record.size, block.row, rows);
        writing = false;
        recycle();
      } catch (error) {
        // A fill or write that failed (e.g. a disk full): the job fails once every loop is back.
        return fail({ kind: 'internal', message: (error as Error).message });
      }
      done[index] = true;
      record.rowsDone += block.count;
      while (firstPending < blocks.length && done[firstPending]) job.contiguousRows += blocks[firstPending++].count;
      this.events.rowsComputed?.(block.count);
      this.notify(job);
    };
    // One loop per thread, one block in flight each. A block's fill and write run while its thread
    // computes the next one; each loop finishes one block at a time, so that at most two blocks' rows per
    // thread are held. (The fill used to make the block's transposes here, and the threads waited for it
    // a third of a P = 6154 job: the threads make them now, see SymmetricFill.)
    const workerLoop = async () => {
      let finishing: Promise<void> = Promise.resolve();
      try {
        while (next < order.length && !job.cancelled && !failure) {
          const index = order[next++];
          const block = blocks[index];
          const tiles = fill.tilesOf(index);
          const task = { kind: 'rows' as const, jobId: record.id, method: job.method, batchChunk: job.batchChunk, block, upperOnly: true, backend: backend.backend, tiles };
          // Spares for the rows and each tile, moved to the thread (one that asks for the request has dropped them).
          const given = spares ? [4 * block.count * record.size, ...tiles.map((t) => 4 * t.count * (t.to - t.from))].map((bytes) => spares.take(bytes)) : [];
          const moved = given.filter((buffer): buffer is ArrayBuffer => buffer !== null);
          let rows;
          try {
            rows = await this.pool.run(moved.length ? { ...task, spares: given } : task, signal, moved.length ? moved : undefined);
            if (needsRequest(rows) && job.request) rows = await this.pool.run({ ...task, request: job.request }, signal);
          } catch (error) {
            // A worker that died: the job fails once every loop is back.
            return fail({ kind: 'internal', message: (error as Error).message });
          }
          if (needsRequest(rows)) return; // the job finished (cancelled) meanwhile and dropped its request
          if (isFailure(rows)) return fail(rows.error);
          await finishing;
          finishing = finishBlock(index, rows as RowsAnswer);
        }
      } finally {
        await finishing;
      }
    };
    await Promise.all(Array.from({ length: this.pool.threads }, workerLoop));
    if (spares) this.dropSpares = setTimeout(() => spares.clear(), SPARE_BUFFER_KEEP_MS).unref();
    await this.store.closeMatrix(record.id);
    if (job.cancelled) return;
    if (failure) return this.finish(job, 'failed', failure);
    record.meta = { backend: backend.backend, dtype: backend.dtype, elapsedMs: performance.now() - started, method: job.method };
    await this.finish(job, 'succeeded');
  }

  private async finish(job: Job, status: 'succeeded' | 'failed' | 'cancelled', error?: JobRecord['error']): Promise<void> {
    const { record } = job;
    if (isFinished(record.status)) return;
    const now = Date.now();
    Object.assign(record, {
      status,
      finishedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + this.options.ttlSeconds * 1000).toISOString(),
      ...(error ? { error } : {}),
    });
    job.request = null;
    job.curvature = undefined;
    try {
      // A running job's matrix is removed by pump() once its blocks in flight are back, so that no
      // write meets a closed file.
      if (status !== 'succeeded' && this.running !== job) await this.store.removeMatrix(record.id);
      if (status === 'succeeded' && !job.ephemeral) {
        await this.store.markComplete({ ...record }).catch((error) => this.events.storageError?.(error, record.id));
      }
      await this.persist(job);
    } catch (error) {
      this.events.storageError?.(error, record.id);
    } finally {
      this.notify(job);
    }
  }

  private notify(job: Job): void {
    for (const listener of [...job.listeners]) listener();
  }
}

/** Bytes a queued job holds: its request's tensors and, for a curvature job, its query's (hvp's directions). */
function heldBytes(request: EngineRequest, curvature: CurvatureWork | undefined): number {
  return requestBytes(request) + (curvature ? queryBytes(curvature.query) : 0);
}
