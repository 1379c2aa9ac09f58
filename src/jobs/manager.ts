import { randomUUID } from 'node:crypto';
import { planRowBlocks, selectParameters, totalSize, type ParameterTensor } from '../compute/index.js';
import type { HessianRequest } from '../schemas/model.js';
import type { ComputePool } from './pool.js';
import { isFailure, needsRequest, type Summary, type WorkerFailure } from './protocol.js';
import { isFinished, type JobRecord, type ResultStore } from './store.js';

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

/** A job the manager knows: its persisted record plus what only lives while the server runs. */
export interface Job {
  record: JobRecord;
  request: HessianRequest | null;
  /** Submitter.id, for the per-client share of the queue (not kept on disk: only unfinished jobs count). */
  client: string | null;
  /** The tensors the matrix is over, with their layers (record.parameters is the public part). */
  parameters: ParameterTensor[];
  /** Rows [0, contiguousRows) are on disk: what a stream may send. */
  contiguousRows: number;
  cancelled: boolean;
  listeners: Set<() => void>;
  /** The last write of job.json: writes of one job run one after another. */
  saved: Promise<void>;
}

export interface JobEvents {
  rowsComputed?(count: number): void;
  /** A job record could not be written (disk full, permissions); the job goes on in memory. */
  storageError?(error: unknown, jobId: string): void;
}

/**
 * Runs Hessian jobs first in, first out, one at a time, each spread over every worker of the pool
 * (row blocks are handed out as workers free up). Rows go to the result store as they arrive.
 */
export class JobManager {
  private readonly jobs = new Map<string, Job>();
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  private accepting = true;
  private idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: ResultStore,
    private readonly pool: ComputePool,
    private readonly options: { maxQueued: number; ttlSeconds: number; maxPerClient?: number },
    private readonly events: JobEvents = {},
  ) {}

  async init(): Promise<void> {
    for (const record of await this.store.recover(Date.now(), this.options.ttlSeconds)) {
      const contiguousRows = record.status === 'succeeded' ? record.size : 0;
      this.jobs.set(record.id, { record, request: null, client: null, parameters: [], contiguousRows, cancelled: false, listeners: new Set(), saved: Promise.resolve() });
    }
  }

  /**
   * Queues a validated request. Throws QueueFullError when MAX_QUEUED_JOBS are already waiting, and
   * ClientQueueFullError when the submitter already has `maxPerClient` jobs queued or running.
   */
  submit(request: HessianRequest, submitter?: Submitter): Job {
    if (!this.accepting) throw new ShuttingDownError();
    if (this.queue.length >= this.options.maxQueued) throw new QueueFullError(this.options.maxQueued);
    const { maxPerClient } = this.options;
    if (submitter && maxPerClient && this.unfinishedOf(submitter.id) >= maxPerClient) throw new ClientQueueFullError(maxPerClient);
    const parameters = selectParameters(request.model, request.wrt);
    const record: JobRecord = {
      id: randomUUID(),
      status: 'queued',
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
      expiresAt: null,
      size: totalSize(parameters),
      rowsDone: 0,
      parameters: parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size })),
      loss: null,
      gradient: null,
      meta: null,
      ...(submitter?.owner ? { owner: submitter.owner } : {}),
    };
    const job: Job = { record, request, client: submitter?.id ?? null, parameters, contiguousRows: 0, cancelled: false, listeners: new Set(), saved: Promise.resolve() };
    this.jobs.set(record.id, job);
    this.queue.push(job);
    this.pump();
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

  /** Resolves when the job has finished, whatever the outcome. */
  async finished(job: Job): Promise<JobRecord> {
    while (!isFinished(job.record.status)) await this.changed(job);
    return job.record;
  }

  /** Stops an unfinished job: a queued one never starts, a running one stops after its blocks in flight. */
  cancel(job: Job): void {
    if (isFinished(job.record.status)) return;
    job.cancelled = true;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    void this.finish(job, 'cancelled');
  }

  /** Writes job.json after any earlier write of the same job; a failure is reported, not thrown. */
  private persist(job: Job): Promise<void> {
    const snapshot = { ...job.record };
    job.saved = job.saved.then(() => this.store.save(snapshot)).catch((error) => this.events.storageError?.(error, snapshot.id));
    return job.saved;
  }

  /** Deletes a finished job and its files. */
  async forget(job: Job): Promise<void> {
    this.jobs.delete(job.record.id);
    await job.saved;
    await this.store.remove(job.record.id).catch((error) => this.events.storageError?.(error, job.record.id));
  }

  /** Deletes every finished result whose TTL has passed. */
  async sweep(now = Date.now()): Promise<void> {
    for (const job of [...this.jobs.values()]) {
      if (job.record.expiresAt && Date.parse(job.record.expiresAt) <= now) await this.forget(job);
    }
  }

  /**
   * Graceful shutdown: no new jobs; queued ones are cancelled; the running one may finish within
   * `graceMs`, after which it is cancelled. Finished results stay on disk for the next start.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.accepting = false;
    for (const job of [...this.queue]) this.cancel(job);
    const running = this.running;
    if (running) {
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([this.finished(running), timer]);
      this.cancel(running);
    }
    await this.idle;
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
  }

  private async execute(job: Job): Promise<void> {
    const { record } = job;
    const started = performance.now();
    record.status = 'running';
    record.startedAt = new Date().toISOString();
    await this.persist(job); // so that a crash leaves a record the next start marks interrupted
    this.notify(job);
    const summary = await this.pool.run({ kind: 'summary', jobId: record.id, request: job.request! });
    if (isFailure(summary)) return this.finish(job, 'failed', summary.error);
    // Cancelled while the summary ran: finish() has already cleaned up; create no matrix file.
    if (job.cancelled) return;
    const { loss, gradient, blockSize, backend } = summary as Summary;
    const { parameters } = job;
    Object.assign(record, { loss, gradient });
    await this.store.createMatrix(record.id, record.size);

    const blocks = planRowBlocks(parameters, blockSize); // in row order, as streams send them
    const layerOf = (index: number) => parameters[blocks[index].tensor].layer;
    // Computed from the lowest layer up, so that a block's columns of lower layers can be copied, by
    // symmetry, from rows already on disk instead of computed (see hessianRows' upperOnly).
    const order = blocks.map((_, i) => i).sort((a, b) => layerOf(a) - layerOf(b) || a - b);
    const done = new Array<boolean>(blocks.length).fill(false);
    const pendingBelow = (layer: number) => blocks.some((_, i) => !done[i] && layerOf(i) < layer);
    let next = 0;
    let firstPending = 0;
    let failure: WorkerFailure['error'] | null = null;
    const fail = (error: WorkerFailure['error']) => {
      failure ??= error;
      this.notify(job); // wakes loops waiting for lower layers
    };
    const workerLoop = async () => {
      while (next < order.length && !job.cancelled && !failure) {
        const index = order[next++];
        const block = blocks[index];
        const layer = layerOf(index);
        try {
          const task = { kind: 'rows' as const, jobId: record.id, block, upperOnly: true };
          let rows = await this.pool.run(task);
          if (needsRequest(rows) && job.request) rows = await this.pool.run({ ...task, request: job.request });
          if (needsRequest(rows)) return; // the job finished (cancelled) meanwhile and dropped its request
          if (isFailure(rows)) return fail(rows.error);
          while (pendingBelow(layer) && !job.cancelled && !failure) await this.changed(job);
          if (job.cancelled || failure) return;
          for (const lower of parameters.filter((t) => t.layer < layer)) {
            this.store.copyTransposedStrip(record.id, record.size, lower.offset, lower.size, block.row, block.count, rows as Float32Array);
          }
          await this.store.writeRows(record.id, record.size, block.row, rows as Float32Array);
        } catch (error) {
          // A worker that died or a write that failed (disk full): the job fails once every loop is back.
          return fail({ kind: 'internal', message: (error as Error).message });
        }
        done[index] = true;
        record.rowsDone += block.count;
        while (firstPending < blocks.length && done[firstPending]) job.contiguousRows += blocks[firstPending++].count;
        this.events.rowsComputed?.(block.count);
        this.notify(job);
      }
    };
    await Promise.all(Array.from({ length: this.pool.threads }, workerLoop));
    await this.store.closeMatrix(record.id);
    if (job.cancelled) return;
    if (failure) return this.finish(job, 'failed', failure);
    record.meta = { backend: backend.backend, dtype: backend.dtype, elapsedMs: performance.now() - started };
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
    try {
      // A running job's matrix is removed by pump() once its blocks in flight are back, so that no
      // write meets a closed file.
      if (status !== 'succeeded' && this.running !== job) await this.store.removeMatrix(record.id);
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
