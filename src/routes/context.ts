import type { BackendInfo } from '../compute/index.js';
import type { Config } from '../config.js';
import type { JobManager } from '../jobs/manager.js';
import type { ModelStore } from '../jobs/models.js';
import type { ComputePool } from '../jobs/pool.js';
import type { ResultStore } from '../jobs/store.js';
import type { Metrics } from '../metrics.js';

/** What the route handlers are given: everything else stays out of the HTTP layer. */
export interface ServiceContext {
  config: Config;
  manager: JobManager;
  /** The worker pool, for requests computed whole in one task (/v1/curvature). */
  pool: ComputePool;
  /** One thread for small synchronous requests, answered from memory (see routes/hessian.ts), and /ready's probe. */
  smallLane: ComputePool;
  store: ResultStore;
  /** Uploaded models (POST /v1/models), named in requests by id. */
  models: ModelStore;
  metrics: Metrics;
  /** Set once a worker has loaded its TF.js backend. */
  backend: () => BackendInfo | null;
  /** Why no backend could be loaded, if that happened. */
  backendError: () => string | null;
}
