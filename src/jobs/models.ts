import { randomUUID } from 'node:crypto';
import * as fsPromises from 'node:fs/promises';
import { join } from 'node:path';
import type { GraphModel, LossSpec, NodeSpec, WeightName } from '../compute/spec.js';
import type { ParameterEntry } from '../schemas/api.js';
import { ResultsQuotaError } from './manager.js';
import { StorageError, type StoreFs } from './store.js';

/** What an uploaded model answers with: its parameter map and its input and output shapes (batch left out). */
export interface ModelSummary {
  parameters: ParameterEntry[];
  size: number;
  inputShape: number[];
  outputShape: number[];
}

/** What is kept of a stored model besides its graph (held in memory for every stored model). */
export interface ModelRecord extends ModelSummary {
  id: string;
  createdAt: string;
  expiresAt: string;
  /** Bytes on disk (model.json and weights.bin): what MAX_RESULTS_BYTES counts. */
  bytes: number;
  /** The loss of the model's training config, used when a request names none. */
  loss?: LossSpec;
  /** Why the model's own loss cannot be used (e.g. it was a function), said when a request names none. */
  lossProblem?: { path: string; message: string };
  /** With API_KEYS: a digest of the key that uploaded it; only that key sees it. */
  owner?: string;
}

/** An imported model, ready to store: the engine's graph, what the importer said of its loss, and what the upload answers with. */
export interface ImportedModel extends Pick<ModelRecord, 'loss' | 'lossProblem'> {
  model: GraphModel;
  summary: ModelSummary;
}

/** A node as model.json holds it: each weight is a [offset, offset + length) range of float32 values in weights.bin. */
type StoredNode = Omit<NodeSpec, 'weights'> & { weights: Partial<Record<WeightName, { offset: number; length: number }>> };
type StoredGraph = Omit<GraphModel, 'nodes'> & { nodes: StoredNode[] };
type ModelFile = ModelRecord & { graph: StoredGraph };

/** Every model directory holds this empty file: startup only ever touches directories that have it. */
export const MODEL_MARKER = '.hessian-service-model';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DELETING = '.deleting';
const RECORD = 'model.json';
const WEIGHTS = 'weights.bin';

/** The graph's weights laid end to end (float32, in node and weight order) and the graph that points into them. */
function encodeGraph(model: GraphModel): { graph: StoredGraph; weights: Float32Array } {
  let offset = 0;
  const parts: Float32Array[] = [];
  const nodes = model.nodes.map((node) => {
    const ranges: StoredNode['weights'] = {};
    for (const [name, values] of Object.entries(node.weights) as [WeightName, Float32Array][]) {
      ranges[name] = { offset, length: values.length };
      parts.push(values);
      offset += values.length;
    }
    return { ...node, weights: ranges } as StoredNode;
  });
  const weights = new Float32Array(offset);
  let at = 0;
  for (const part of parts) {
    weights.set(part, at);
    at += part.length;
  }
  return { graph: { ...model, nodes }, weights };
}

/** The graph again, each weight a view on its own range of `weights`. */
function decodeGraph(graph: StoredGraph, weights: Float32Array): GraphModel {
  const nodes = graph.nodes.map((node) => {
    const values: NodeSpec['weights'] = {};
    for (const [name, { offset, length }] of Object.entries(node.weights) as [WeightName, { offset: number; length: number }][]) {
      values[name] = weights.subarray(offset, offset + length);
    }
    return { ...node, weights: values } as NodeSpec;
  });
  return { ...graph, nodes };
}

const weightCount = (graph: StoredGraph) =>
  graph.nodes.reduce((n, node) => n + Object.values(node.weights).reduce((m, range) => m + (range?.length ?? 0), 0), 0);

/**
 * Uploaded models (POST /v1/models), kept on disk beside the results: RESULTS_DIR/<id>/model.json (the
 * engine's graph, its summary, owner and expiry) and RESULTS_DIR/<id>/weights.bin (every weight as
 * float32, host byte order), so that a request naming the model re-imports nothing. A model expires
 * RESULT_TTL_SECONDS after its upload; its bytes count against MAX_RESULTS_BYTES with the results'.
 * Startup only looks into directories named by a UUID that hold MODEL_MARKER; the results' store
 * skips them (they lack its marker), as this store skips the results'.
 */
export class ModelStore {
  private readonly records = new Map<string, ModelRecord>();
  /** Bytes of uploads being written: counted against the quota before they are on disk. */
  private pendingBytes = 0;

  constructor(
    readonly dir: string,
    private readonly options: { ttlSeconds: number; maxBytes: number; otherBytes: () => number },
    private readonly fs: StoreFs = fsPromises,
  ) {}

  private modelDir = (id: string) => join(this.dir, id);

  /** Bytes the stored models (and uploads being written) hold on disk. */
  get bytes(): number {
    let total = this.pendingBytes;
    for (const record of this.records.values()) total += record.bytes;
    return total;
  }

  /**
   * Reads the models a previous run left: a complete, unexpired model is served again; an expired one,
   * an upload that stopped half-way (no model.json, or weights of the wrong size) and a half-deleted
   * directory are removed.
   */
  async recover(now = Date.now()): Promise<void> {
    await this.fs.mkdir(this.dir, { recursive: true });
    for (const entry of await this.fs.readdir(this.dir, { withFileTypes: true })) {
      const deleting = entry.name.endsWith(DELETING);
      const id = deleting ? entry.name.slice(0, -DELETING.length) : entry.name;
      const path = join(this.dir, entry.name);
      if (!entry.isDirectory() || !UUID.test(id) || !(await this.exists(join(path, MODEL_MARKER)))) continue;
      const file = deleting ? null : await this.readModelFile(id);
      const weightsSize = file ? await this.fs.stat(join(path, WEIGHTS)).then((s) => s.size, () => -1) : -1;
      if (!file || weightsSize !== weightCount(file.graph) * 4 || Date.parse(file.expiresAt) <= now) {
        await this.fs.rm(path, { recursive: true, force: true });
        continue;
      }
      const { graph: _graph, ...record } = file;
      this.records.set(id, record);
    }
  }

  private async readModelFile(id: string): Promise<ModelFile | null> {
    try {
      return JSON.parse(await this.fs.readFile(join(this.modelDir(id), RECORD), 'utf8')) as ModelFile;
    } catch {
      return null;
    }
  }

  private exists = (path: string) => this.fs.stat(path).then(() => true, () => false);

  /**
   * Stores an imported model and answers its record. Throws ResultsQuotaError when it would not fit in
   * MAX_RESULTS_BYTES, and StorageError (nothing left behind) when it cannot be written.
   */
  async put({ model, loss, lossProblem, summary }: ImportedModel, owner?: string, now = Date.now()): Promise<ModelRecord> {
    const id = randomUUID();
    const { graph, weights } = encodeGraph(model);
    const record: ModelRecord = {
      id,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + this.options.ttlSeconds * 1000).toISOString(),
      bytes: 0,
      ...summary,
      ...(loss ? { loss } : {}),
      ...(lossProblem ? { lossProblem } : {}),
      ...(owner ? { owner } : {}),
    };
    const json = JSON.stringify({ ...record, graph } satisfies ModelFile);
    // The record's own byte count changes its length by a few digits: count them generously.
    record.bytes = weights.byteLength + Buffer.byteLength(json) + 32;
    const used = this.options.otherBytes() + this.bytes;
    if (used + record.bytes > this.options.maxBytes) throw new ResultsQuotaError(record.bytes, used, this.options.maxBytes, 'model');
    this.pendingBytes += record.bytes;
    const dir = this.modelDir(id);
    try {
      await this.fs.mkdir(dir, { recursive: true });
      await this.fs.writeFile(join(dir, MODEL_MARKER), '');
      await this.fs.writeFile(join(dir, WEIGHTS), new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength));
      // model.json last, by rename: a model directory with it is complete.
      const temporary = join(dir, `${RECORD}.${randomUUID()}.tmp`);
      await this.fs.writeFile(temporary, JSON.stringify({ ...record, graph } satisfies ModelFile));
      await this.fs.rename(temporary, join(dir, RECORD));
    } catch (error) {
      await this.fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw new StorageError('store the model in RESULTS_DIR', error);
    } finally {
      this.pendingBytes -= record.bytes;
    }
    this.records.set(id, record);
    return record;
  }

  /** The record of a stored model the caller may see: unknown, expired and another key's models are null. */
  get(id: string, owner: string | undefined, now = Date.now()): ModelRecord | null {
    const record = this.records.get(id);
    if (!record || record.owner !== owner) return null;
    if (Date.parse(record.expiresAt) <= now) {
      void this.remove(id).catch(() => undefined); // the sweep tries again
      return null;
    }
    return record;
  }

  /** The stored graph, read from disk (null if it has gone meanwhile). */
  async load(record: ModelRecord): Promise<GraphModel | null> {
    const file = await this.readModelFile(record.id);
    if (!file) return null;
    const bytes = await this.fs.readFile(join(this.modelDir(record.id), WEIGHTS)).catch(() => null);
    if (!bytes || bytes.byteLength !== weightCount(file.graph) * 4) return null;
    // A copy, aligned for Float32Array (a Buffer may start at any byte of its pool).
    const weights = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(weights.buffer).set(bytes);
    return decodeGraph(file.graph, weights);
  }

  /**
   * Deletes a model, all or nothing: its directory is first renamed (atomic); a failure leaves the
   * model whole and is thrown as a StorageError. What a failed removal after the rename leaves is
   * finished at the next start.
   */
  async remove(id: string): Promise<void> {
    const doomed = this.modelDir(id) + DELETING;
    await this.fs.rm(doomed, { recursive: true, force: true }).catch(() => undefined);
    try {
      await this.fs.rename(this.modelDir(id), doomed);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new StorageError(`delete the files of model ${id}`, error);
    }
    this.records.delete(id);
    await this.fs.rm(doomed, { recursive: true, force: true }).catch(() => undefined);
  }

  /** Deletes every model whose TTL has passed; one that cannot be deleted is tried again next time. */
  async sweep(now = Date.now(), onError?: (error: unknown, id: string) => void): Promise<void> {
    for (const record of [...this.records.values()]) {
      if (Date.parse(record.expiresAt) <= now) await this.remove(record.id).catch((error) => onError?.(error, record.id));
    }
  }
}
