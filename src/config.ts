import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const intFrom = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);
/** `true`/`1` or `false`/`0` (z.coerce.boolean would read "false" as true). */
const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true' || value === '1');

/** Every setting comes from the environment; the README's configuration table mirrors this. */
export const ConfigSchema = z.object({
  PORT: intFrom(3000),
  HOST: z.string().default('127.0.0.1'),
  WORKERS: intFrom(availableParallelism(), 1),
  MAX_BODY_BYTES: intFrom(32 * 1024 * 1024, 1024),
  /** JSON bodies of this many bytes and more (for /v1/hessian and /v1/jobs) are read on a thread of their own. */
  BODY_THREAD_BYTES: intFrom(1024 * 1024, 0),
  /** Heap of the thread that parses one large body; a body that needs more gets 413. */
  BODY_THREAD_HEAP_MB: intFrom(1536, 64),
  /** A request whose headers and body have not all arrived this long after it began gets 408 and its connection closed; 0: none. */
  REQUEST_TIMEOUT_SECONDS: intFrom(300, 0),
  MAX_PARAMETERS: intFrom(20000, 1),
  MAX_MODEL_PARAMETERS: intFrom(10_000_000, 1),
  MAX_QUEUED_JOBS: intFrom(64, 1),
  RESULTS_DIR: z.string().default(join(tmpdir(), 'hessian-results')),
  RESULT_TTL_SECONDS: intFrom(3600, 1),
  MAX_RESULTS_BYTES: intFrom(16 * 1024 ** 3, 1),
  MAX_QUEUED_BYTES: intFrom(256 * 1024 ** 2, 1),
  STREAM_WRITE_TIMEOUT_SECONDS: intFrom(60, 1),
  SHUTDOWN_GRACE_SECONDS: intFrom(30, 0),
  /** Admission by cost: a job's estimated operations, and one worker task's estimated peak memory. */
  MAX_JOB_FLOPS: z.coerce.number().positive().default(1e13),
  MAX_WORKER_MEMORY_MB: intFrom(2048, 16),
  /** Memory the running job's symmetric fill may hold on the main thread (transposes of rows computed, for the rows to come); 0: read back from the matrix file. */
  SYMMETRIC_FILL_MEMORY_MB: intFrom(512, 0),
  /** A compute thread whose backend memory (the wasm heap) is larger after a task is replaced once idle; 0: never. */
  WORKER_RECYCLE_MB: intFrom(1024, 0),
  /** A running job is stopped (failed, error kind "timeout") after this long. */
  JOB_TIMEOUT_SECONDS: intFrom(3600, 1),
  /** Synchronous requests estimated at most this many operations (and P <= 1024) take the small lane; 0: none. */
  SMALL_JOB_FLOPS: z.coerce.number().min(0).default(1e8),
  /**
   * Small-lane requests whose inline estimate is at most this many operations are computed on the HTTP
   * thread in plain JavaScript float64 (compute/inline; measured 1.3-1.5 ns an operation near the bound, so
   * the default holds the event loop some 0.15 ms at most); 0: never.
   */
  INLINE_MAX_FLOPS: z.coerce.number().min(0).default(1e5),
  HESSIAN_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  /**
   * The small lane's backend: wasm by default, whatever HESSIAN_BACKEND is, since its per-op overhead is
   * the lowest for tiny work (tfjs-node's is some 2.5x wasm's on the 2x2 request).
   */
  SMALL_LANE_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('wasm'),
  /** TensorFlow's intra-op threads (native backend); unset: the cores shared out over WORKERS (see configureNativeRuntime). */
  TF_NUM_INTRAOP_THREADS: z.coerce.number().int().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Comma-separated API keys; empty: no keys, every route open (local use). */
  API_KEYS: z.string().default(''),
  /** A file of API keys, one a line (blank lines and # comments skipped), added to API_KEYS. */
  API_KEYS_FILE: z.string().default(''),
  /** With keys: /metrics, /docs and /openapi.json need a key too. */
  PROTECT_DOCS_AND_METRICS: flag(false),
  /** Requests a minute to /v1 per client (API key, or IP address without keys); 0: no limit. */
  RATE_LIMIT_PER_MINUTE: intFrom(0),
  /** Jobs (synchronous requests included) one client may have queued or running; 0: no limit but MAX_QUEUED_JOBS. */
  MAX_JOBS_PER_CLIENT: intFrom(0),
  /** Comma-separated origins allowed to call from a browser, or `*`; empty: no CORS. */
  CORS_ORIGINS: z.string().default(''),
  /** Behind a reverse proxy: take the client address from X-Forwarded-For (per-IP limits). */
  TRUST_PROXY: flag(false),
});

export type Config = z.infer<typeof ConfigSchema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { ...parsed.data, ...overrides };
}
