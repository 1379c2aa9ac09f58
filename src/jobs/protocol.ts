import type { MessagePort } from 'node:worker_threads';
import type { BackendInfo, BackendName, EngineRequest, HessianMethod, HessianResult, RowBlock, Tile } from '../compute/index.js';
import type { CurvatureQuery, QuantityResult } from '../compute/quantities/index.js';

/** Messages between the job manager (main thread) and the compute workers. */
export type WorkerTask =
  | { kind: 'ping' }
  /** method: the path the admission planned (planHessian), which the block size is for; batchChunk: its batch chunk, if any. */
  | { kind: 'summary'; jobId: string; request: EngineRequest; method: HessianMethod; batchChunk?: number }
  /**
   * upperOnly: the manager fills the columns symmetricColumns names from rows on disk.
   * request: sent only when the worker answered NeedsRequest, i.e. once per worker and job, since
   * copying a large batch to a worker for every block would cost more than the block.
   * backend: the one the job's summary ran on; a worker on another one refuses the block, so that
   * a job never mixes backends (e.g. a replacement worker that fell back from tensorflow to wasm).
   * tiles: the pieces of the rows' transpose to return with them, for the symmetric fill of later blocks.
   * spares: buffers of earlier answers (this job's or the one before), moved back to be written again (see SpareBuffers):
   * spares[0] for the rows, spares[1 + k] for tile k, null where none fits.
   */
  | { kind: 'rows'; jobId: string; request?: EngineRequest; method: HessianMethod; batchChunk?: number; block: RowBlock; upperOnly: boolean; backend: BackendName; tiles: Tile[]; spares?: (ArrayBuffer | null)[] }
  /**
   * One curvature quantity (POST /v1/curvature, or a curvature job), computed whole in one worker.
   * progress: a job's port (transferred with the task), posted the count of each batch of operator
   * products as it is done.
   */
  | { kind: 'curvature'; request: EngineRequest; query: CurvatureQuery; blockSize: number; progress?: MessagePort }
  /** A small synchronous request's whole answer, computed in the small lane's worker and kept in memory. */
  | { kind: 'hessian'; request: EngineRequest; blockSize: number; method: HessianMethod }
  /** /ready's check that a worker computes: a 2x2 matMul, compared with its known product. */
  | { kind: 'probe' };

/** A curvature quantity with the model's loss and how it was computed. */
export interface CurvatureAnswer extends QuantityResult {
  loss: number;
  meta: BackendInfo & { elapsedMs: number };
}

/** A failure the worker reports instead of throwing, so that its kind survives the thread boundary. */
export interface WorkerFailure {
  error: { kind: 'spec' | 'numerical' | 'internal'; message: string };
}

/** A worker whose backend may be unusable ended its thread; the task it ran fails with this message. */
export class WorkerCrash extends Error {
  override name = 'WorkerCrash';
}

/**
 * What a thread posts (on its parentPort, beside its answer) when its backend memory passed
 * WORKER_RECYCLE_MB: it retires, and ends with RETIRED_EXIT_CODE.
 */
export interface Retiring {
  retiring: { threadId: number; backendBytes: number };
}

/** The exit code of a retired thread: a task it was handed but did not start is run again elsewhere. */
export const RETIRED_EXIT_CODE = 75;

/** A worker asked for rows of a job it has not prepared. */
export interface NeedsRequest {
  needsRequest: true;
}

export interface Summary {
  loss: number;
  gradient: number[];
  backend: BackendInfo;
}

/** The answer to a 'hessian' task (the matrix always present). */
export type HessianAnswer = HessianResult & { hessian: Float32Array };

/** The answer to a 'rows' task: the rows, and the tiles of their transpose it asked for, in its order. */
export interface RowsAnswer {
  rows: Float32Array;
  tiles: Float32Array[];
}

export type WorkerResult = HessianAnswer | BackendInfo | Summary | RowsAnswer | WorkerFailure | NeedsRequest | CurvatureAnswer;

export const isFailure = (r: unknown): r is WorkerFailure => typeof r === 'object' && r !== null && 'error' in r;
export const needsRequest = (r: unknown): r is NeedsRequest => typeof r === 'object' && r !== null && 'needsRequest' in r;
