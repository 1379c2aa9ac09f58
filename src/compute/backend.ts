import { availableParallelism } from 'node:os';
import { threadId } from 'node:worker_threads';
import { tf } from './tf.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = BackendName | 'auto';

export interface BackendInfo {
  backend: BackendName;
  dtype: 'float32';
  /** Why a preferred backend was not used, when auto fell back. */
  fallbacks: string[];
  /** The TensorFlow library's own version (TF_Version()), on the tensorflow backend only. */
  tensorflowVersion: string | null;
  /** TensorFlow's intra-op thread count (TF_NUM_INTRAOP_THREADS), on the tensorflow backend only. */
  intraOpThreads: number | null;
}

const NATIVE_PACKAGE = '@tensorflow/tfjs-node';

/** Each backend's loader: imports its package (which registers it with tfjs-core) and selects it. */
const loaders: Record<BackendName, () => Promise<void>> = {
  // An optional dependency: absent wherever libtensorflow could not be downloaded at install time.
  // The specifier is a variable so that TypeScript does not require the package to be installed.
  tensorflow: async () => {
    await import(NATIVE_PACKAGE);
  },
  wasm: async () => {
    await import('@tensorflow/tfjs-backend-wasm');
  },
  cpu: async () => {
    await import('@tensorflow/tfjs-backend-cpu');
  },
};

let active: BackendInfo | null = null;

/**
 * One lock per process around libtensorflow's first load in a thread (import, context, first op): two
 * threads loading it at the same moment crash the process now and then with SIGSEGV (measured: 3 of 120
 * fresh processes whose two threads loaded it at once; 0 of 80 that loaded it one thread after the
 * other). The main thread makes the lock; pools hand its buffer to their threads (shareNativeLoadLock)
 * and free it when a thread that held it is destroyed mid-load (releaseNativeLoadLockOf).
 * The lock's word: 0 when free, else the holder's threadId + 1 (the main thread's threadId is 0).
 */
let nativeLoadLock = new Int32Array(new SharedArrayBuffer(4));
/** Past this, a holder is taken to be gone without notice and the lock is taken over. */
const NATIVE_LOAD_LOCK_MS = 20_000;

export const nativeLoadLockBuffer = (): SharedArrayBuffer => nativeLoadLock.buffer as SharedArrayBuffer;

/** In a worker thread: load libtensorflow under the process's lock (the buffer from nativeLoadLockBuffer). */
export function shareNativeLoadLock(buffer: SharedArrayBuffer | undefined): void {
  if (buffer) nativeLoadLock = new Int32Array(buffer);
}

/** On the main thread, for a thread that ended: a lock it held (it was terminated mid-load) is freed. */
export function releaseNativeLoadLockOf(endedThreadId: number): void {
  if (Atomics.compareExchange(nativeLoadLock, 0, endedThreadId + 1, 0) === endedThreadId + 1) Atomics.notify(nativeLoadLock, 0);
}

async function underNativeLoadLock<T>(load: () => Promise<T>): Promise<T> {
  const me = threadId + 1;
  const deadline = Date.now() + NATIVE_LOAD_LOCK_MS;
  for (;;) {
    const holder = Atomics.compareExchange(nativeLoadLock, 0, 0, me);
    if (holder === 0) break;
    if (Date.now() > deadline) {
      Atomics.store(nativeLoadLock, 0, me);
      break;
    }
    // Blocks this thread only; the holder is another thread.
    Atomics.wait(nativeLoadLock, 0, holder, 100);
  }
  try {
    return await load();
  } finally {
    Atomics.compareExchange(nativeLoadLock, 0, me, 0);
    Atomics.notify(nativeLoadLock, 0);
  }
}

/**
 * Sets, for this process, what libtensorflow reads from the environment when a thread first loads it;
 * must run on the main thread (a worker thread's process.env is a private copy) before the workers
 * start. Intra-op threads: the given number, else the operator's TF_NUM_INTRAOP_THREADS, else the
 * cores shared out over the workers (measured: TensorFlow's own default of one per core
 * oversubscribes the cores when every worker runs ops at once). TF_CPP_MIN_LOG_LEVEL=2 drops its
 * load-time INFO lines unless the operator set a level; what libtensorflow prints before it reads
 * that goes to stderr, never to the JSON logs on stdout.
 */
export function configureNativeRuntime(workers: number, intraOpThreads?: number): void {
  const threads = intraOpThreads ?? (Number(process.env.TF_NUM_INTRAOP_THREADS) || defaultIntraOpThreads(workers));
  process.env.TF_NUM_INTRAOP_THREADS = String(threads);
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
}

export const defaultIntraOpThreads = (workers: number): number => Math.max(1, Math.floor(availableParallelism() / workers));

/** The TF version and intra-op threads the native backend runs with (null elsewhere). */
function nativeDetails(name: BackendName): Pick<BackendInfo, 'tensorflowVersion' | 'intraOpThreads'> {
  if (name !== 'tensorflow') return { tensorflowVersion: null, intraOpThreads: null };
  const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
  // Unset, TensorFlow sizes its intra-op pool to the machine's cores.
  const threads = Number(process.env.TF_NUM_INTRAOP_THREADS) || availableParallelism();
  return { tensorflowVersion: binding?.TF_Version ?? null, intraOpThreads: threads };
}

export function backendPreference(value = process.env.HESSIAN_BACKEND ?? 'auto'): BackendPreference {
  if (value === 'auto' || value === 'tensorflow' || value === 'wasm' || value === 'cpu') return value;
  throw new Error(`HESSIAN_BACKEND must be auto, tensorflow, wasm or cpu, not '${value}'`);
}

/**
 * Selects the TF.js backend once per thread: the one asked for, or with 'auto' the native TensorFlow
 * backend when @tensorflow/tfjs-node loads, else wasm, else the plain JavaScript cpu backend.
 */
export function initBackend(preference: BackendPreference = backendPreference()): Promise<BackendInfo> {
  // One selection at a time per thread: a second caller waits for the first (never for its own lock).
  loading ??= selectBackend(preference).catch((error: unknown) => {
    loading = null;
    throw error;
  });
  return loading;
}

let loading: Promise<BackendInfo> | null = null;

async function selectBackend(preference: BackendPreference): Promise<BackendInfo> {
  if (active) return active;
  // PROD silences TF.js's console banners (e.g. the advice to install tfjs-node) in the service logs.
  tf.env().set('PROD', true);
  const order: BackendName[] = preference === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [preference];
  const fallbacks: string[] = [];
  for (const name of order) {
    try {
      const load = async () => {
        await loaders[name]();
        if (!(await tf.setBackend(name))) throw new Error('setBackend returned false');
        await tf.ready();
        // One op at once: a thread that loaded libtensorflow but never ran an op crashes the process
        // (SIGSEGV) when it exits; after a first op it exits cleanly. Cheap on every backend.
        tf.tidy(() => {
          tf.add(tf.scalar(1), tf.scalar(1)).dataSync();
        });
      };
      await (name === 'tensorflow' ? underNativeLoadLock(load) : load());
      active = { backend: name, dtype: 'float32', fallbacks, ...nativeDetails(name) };
      return active;
    } catch (error) {
      fallbacks.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no TF.js backend could be loaded (${fallbacks.join('; ')})`);
}

export const activeBackend = (): BackendInfo | null => active;
