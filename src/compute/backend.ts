import { tf } from './tf.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = BackendName | 'auto';

export interface BackendInfo {
  backend: BackendName;
  dtype: 'float32';
  /** Why a preferred backend was not used, when auto fell back. */
  fallbacks: string[];
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

export function backendPreference(value = process.env.HESSIAN_BACKEND ?? 'auto'): BackendPreference {
  if (value === 'auto' || value === 'tensorflow' || value === 'wasm' || value === 'cpu') return value;
  throw new Error(`HESSIAN_BACKEND must be auto, tensorflow, wasm or cpu, not '${value}'`);
}

/**
 * Selects the TF.js backend once per thread: the one asked for, or with 'auto' the native TensorFlow
 * backend when @tensorflow/tfjs-node loads, else wasm, else the plain JavaScript cpu backend.
 */
export async function initBackend(preference: BackendPreference = backendPreference()): Promise<BackendInfo> {
  if (active) return active;
  // PROD silences TF.js's console banners (e.g. the advice to install tfjs-node) in the service logs.
  tf.env().set('PROD', true);
  const order: BackendName[] = preference === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [preference];
  const fallbacks: string[] = [];
  for (const name of order) {
    try {
      await loaders[name]();
      if (!(await tf.setBackend(name))) throw new Error('setBackend returned false');
      await tf.ready();
      active = { backend: name, dtype: 'float32', fallbacks };
      return active;
    } catch (error) {
      fallbacks.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no TF.js backend could be loaded (${fallbacks.join('; ')})`);
}

export const activeBackend = (): BackendInfo | null => active;
