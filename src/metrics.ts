import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobManager } from './jobs/manager.js';

/** Prometheus metrics of one app instance (its own registry, so tests can build several apps). */
export function createMetrics(manager: () => JobManager) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labels = ['method', 'route', 'status'] as const;
  return {
    registry,
    requests: new Counter({ name: 'hessian_http_requests_total', help: 'HTTP requests answered', labelNames: labels, registers: [registry] }),
    duration: new Histogram({
      name: 'hessian_http_request_duration_seconds',
      help: 'Time to answer an HTTP request (headers sent; streamed bodies may take longer)',
      labelNames: labels,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
      registers: [registry],
    }),
    workerReplacements: new Counter({
      name: 'hessian_worker_replacements_total',
      help: 'Compute threads ended by an error that may have broken their backend (or by a cancel mid-task, or retired for their memory) and replaced',
      registers: [registry],
    }),
    workerRecycles: new Counter({
      name: 'hessian_worker_recycles_total',
      help: 'Compute threads retired because their backend memory (the wasm heap, which never shrinks) passed WORKER_RECYCLE_MB after a task',
      registers: [registry],
    }),
    bodyThreads: new Gauge({ name: 'hessian_body_threads', help: 'Threads alive that receive or parse a large request body (BODY_THREAD_BYTES)', registers: [registry] }),
    rows: new Counter({ name: 'hessian_rows_computed_total', help: 'Hessian rows computed by the workers', registers: [registry] }),
    queueDepth: new Gauge({
      name: 'hessian_queue_depth',
      help: 'Jobs waiting for the worker pool',
      registers: [registry],
      collect() {
        this.set(manager().queueDepth);
      },
    }),
    jobs: new Gauge({
      name: 'hessian_jobs',
      help: 'Jobs known to the server, by status',
      labelNames: ['status'],
      registers: [registry],
      collect() {
        for (const [status, count] of Object.entries(manager().countByStatus())) this.set({ status }, count);
      },
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
