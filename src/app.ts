import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { pino } from 'pino';
import type { ZodType } from 'zod';
import { specError, type BackendInfo } from './compute/index.js';
import type { Config } from './config.js';
import { JobManager } from './jobs/manager.js';
import { ModelStore } from './jobs/models.js';
import { ComputePool } from './jobs/pool.js';
import { ResultStore } from './jobs/store.js';
import { createMetrics } from './metrics.js';
import { DecodedBody, decoderNameFor } from './plugins/body-decoders.js';
import { deploymentPlugins } from './plugins/index.js';
import { jsonBodyPlugin } from './plugins/json-body.js';
import type { ServiceContext } from './routes/context.js';
import { curvatureRoutes } from './routes/curvature.js';
import { errorHandler } from './routes/errors.js';
import { hessianRoutes } from './routes/hessian.js';
import { jobRoutes } from './routes/jobs.js';
import { modelRoutes } from './routes/models.js';
import { opsRoutes } from './routes/ops.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Graceful shutdown's first half: no new jobs (503), queued ones cancelled, the running one given
     * SHUTDOWN_GRACE_SECONDS, then cancelled. Requests other than new jobs are still served. Idempotent.
     */
    drain(): Promise<void>;
  }
}

/**
 * Builds the service: result store, worker pool, job manager, metrics and the HTTP routes.
 * Resolves once the store has been recovered; the pool's backend loads in the background (/ready).
 */
/** JS heap a compute thread needs beside its task's working set (modules, backend, messages). */
const WORKER_RUNTIME_HEAP_MB = 256;

/** Node's own headers timeout. */
const HEADERS_TIMEOUT_MS = 60_000;

/**
 * Node's server options that make REQUEST_TIMEOUT_SECONDS hold: requests looked at every tenth of it
 * (between 0.1 and 30 s, Node's default), and a headers timeout no longer than it.
 */
const requestTimeoutOptions = (seconds: number) => ({
  connectionsCheckingInterval: Math.min(30_000, Math.max(100, seconds * 100)),
  headersTimeout: seconds > 0 ? Math.min(HEADERS_TIMEOUT_MS, seconds * 1000) : HEADERS_TIMEOUT_MS,
});

export async function buildApp(config: Config): Promise<FastifyInstance> {
  const store = new ResultStore(config.RESULTS_DIR);
  let manager: JobManager;
  // Results and stored models share RESULTS_DIR and its quota, MAX_RESULTS_BYTES.
  const models = new ModelStore(config.RESULTS_DIR, { ttlSeconds: config.RESULT_TTL_SECONDS, maxBytes: config.MAX_RESULTS_BYTES, otherBytes: () => manager.resultsBytes });
  const metrics = createMetrics(() => manager);
  const threadOptions = {
    // The budget is a task's working set; the thread's own code and runtime (tfjs-node's JS side alone is
    // some 55 MiB of heap) come on top, or a task within budget could end its thread.
    heapLimitMb: config.MAX_WORKER_MEMORY_MB + WORKER_RUNTIME_HEAP_MB,
    onReplace: () => metrics.workerReplacements.inc(),
    recycleMb: config.WORKER_RECYCLE_MB,
    onRecycle: () => metrics.workerRecycles.inc(),
    intraOpThreads: config.TF_NUM_INTRAOP_THREADS,
  };
  const pool = new ComputePool(config.WORKERS, config.HESSIAN_BACKEND, threadOptions);
  // The small lane: one more thread, for small synchronous requests (never behind a job's blocks) and
  // /ready's probe, on a backend fast for tiny work (SMALL_LANE_BACKEND; its answers' meta says which).
  const smallLane = new ComputePool(1, config.SMALL_LANE_BACKEND, threadOptions);
  manager = new JobManager(
    store,
    pool,
    {
      maxQueued: config.MAX_QUEUED_JOBS,
      ttlSeconds: config.RESULT_TTL_SECONDS,
      memoryBudgetBytes: config.MAX_WORKER_MEMORY_MB * 2 ** 20,
      timeoutSeconds: config.JOB_TIMEOUT_SECONDS,
      maxResultsBytes: config.MAX_RESULTS_BYTES,
      maxQueuedBytes: config.MAX_QUEUED_BYTES,
      maxPerClient: config.MAX_JOBS_PER_CLIENT,
      fillMemoryBytes: config.SYMMETRIC_FILL_MEMORY_MB * 2 ** 20,
      otherStoredBytes: () => models.bytes,
    },
    {
      rowsComputed: (n) => metrics.rows.inc(n),
      storageError: (error, jobId) => app.log.error({ err: error, jobId }, 'could not write to RESULTS_DIR'),
    },
  );
  await manager.init();
  await models.recover();

  const app = Fastify({
    loggerInstance: pino({ level: config.LOG_LEVEL }),
    bodyLimit: config.MAX_BODY_BYTES,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    trustProxy: config.TRUST_PROXY,
    // fastify turns Node's request timeout off by default, so a client that stalls mid-body would hold
    // its connection (and a body thread) forever. Node checks it every connectionsCheckingInterval, and
    // ignores it while the headers timeout (60 s by default) is the longer of the two.
    requestTimeout: config.REQUEST_TIMEOUT_SECONDS * 1000,
    http: requestTimeoutOptions(config.REQUEST_TIMEOUT_SECONDS),
  });

  let backend: BackendInfo | null = null;
  let backendError: string | null = null;
  pool.backend().then(
    (info) => {
      backend = info;
      const { backend: name, fallbacks, tensorflowVersion, intraOpThreads } = info;
      const native = tensorflowVersion ? ` (TensorFlow ${tensorflowVersion}, ${intraOpThreads} intra-op threads)` : '';
      app.log.info({ backend: name, fallbacks, tensorflowVersion, intraOpThreads }, `compute backend: ${name}${native}`);
    },
    (error) => {
      backendError = (error as Error).message;
      app.log.error({ err: error }, 'the worker pool could not load a TF.js backend');
    },
  );
  const ctx: ServiceContext = { config, manager, pool, smallLane, store, models, metrics, backend: () => backend, backendError: () => backendError };

  // Request bodies are checked by the same zod schemas that document them; failures name their field.
  // A large body arrives already checked (and compact) from its body thread (plugins/json-body.ts).
  // A body of BODY_DECODERS is validated by its decoder (the importers), in the route or on that thread.
  app.setValidatorCompiler(({ schema }) => (data) => {
    if (data instanceof DecodedBody) return data.error ? { error: data.error } : { value: data };
    if (decoderNameFor(schema)) return { value: data };
    const parsed = (schema as ZodType).safeParse(data);
    return parsed.success ? { value: parsed.data } : { error: specError(parsed.error) };
  });
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
    metrics.requests.inc(labels);
    metrics.duration.observe(labels, reply.elapsedTime / 1000);
  });

  await app.register(deploymentPlugins(config));
  await app.register(
    jsonBodyPlugin({ offThreadBytes: config.BODY_THREAD_BYTES, threadHeapMb: config.BODY_THREAD_HEAP_MB, onThreads: (alive) => metrics.bodyThreads.set(alive) }),
  );
  await app.register(hessianRoutes(ctx));
  await app.register(curvatureRoutes(ctx));
  await app.register(jobRoutes(ctx));
  await app.register(modelRoutes(ctx));
  await app.register(opsRoutes(ctx));

  const sweeper = setInterval(() => {
    void manager.sweep();
    void models.sweep(Date.now(), (error, modelId) => app.log.error({ err: error, modelId }, 'could not delete an expired model'));
  }, Math.min(config.RESULT_TTL_SECONDS, 60) * 1000);
  sweeper.unref();
  // Graceful shutdown: queued jobs are cancelled, the running one gets the grace period, results stay.
  // server.ts drains before close(): fastify runs preClose hooks under its 10 s plugin timeout, which
  // would cut a longer grace period short; the hook covers a close() without a drain (tests).
  let draining: Promise<void> | null = null;
  app.decorate('drain', () => {
    draining ??= manager.shutdown(config.SHUTDOWN_GRACE_SECONDS * 1000);
    return draining;
  });
  app.addHook('preClose', async () => {
    clearInterval(sweeper);
    await app.drain();
  });
  app.addHook('onClose', async () => {
    await Promise.all([pool.destroy(), smallLane.destroy()]);
  });
  return app as unknown as FastifyInstance;
}
