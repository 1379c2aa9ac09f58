import { Readable } from 'node:stream';
import type { JobManager, Job } from './manager.js';
import { formatFloat32 } from './float-format.js';
import { npyHeader } from './npy.js';
import { ResultStore, type JobRecord } from './store.js';

/** The forms a finished matrix is served in: three of its values, and a picture of it. */
export const RESULT_TYPES = {
  json: 'application/json',
  binary: 'application/octet-stream',
  npy: 'application/x-npy',
  png: 'image/png',
} as const;
export type ResultFormat = keyof typeof RESULT_TYPES;

/**
 * Rows [0, count) of `values` as JSON arrays joined by commas. Formatting is CPU-bound on the main
 * thread (about 1 µs a value, more while the workers take the cores), so it lets the event loop turn
 * every VALUES_PER_TURN values: a large JSON or NDJSON response must not hold up other requests
 * (e.g. /health) for hundreds of ms.
 */
const VALUES_PER_TURN = 4096;
export async function formatRows(values: Float32Array, size: number, count: number): Promise<string> {
  const lines = new Array<string>(count);
  const parts = new Array<string>(size);
  let sinceTurn = 0;
  for (let r = 0; r < count; r++) {
    for (let i = 0, at = r * size; i < size; i++, at++) {
      if (++sinceTurn > VALUES_PER_TURN) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sinceTurn = 0;
      }
      parts[i] = formatFloat32(values[at]);
    }
    lines[r] = `[${parts.join(',')}]`;
  }
  return lines.join(',');
}

/**
 * About 256 KB of float32 (some 700 KB as JSON text) per read, at least one row: what a response
 * holds in memory per chunk. Responses are readables of one chunk at most (highWaterMark 1 byte) piped
 * with backpressure, so a client that reads nothing costs about two chunks, not the whole matrix.
 */
/**
 * Row blocks a binary row stream holds, handed over by the job, waiting to be sent (see rowStream).
 * Measured at P = 6154 over loopback on the loaded 2-core machine: with 16 MiB the client fell up to
 * 126 MB behind the computation, read back from disk with some 0.6 s spent waiting on those reads;
 * with 256 MiB nothing was read back. One job runs at a time, so this bounds the memory of the streams
 * following it too.
 */
const HELD_BLOCK_BYTES = 128 * 2 ** 20;
export const rowsPerRead = (size: number) => Math.max(1, Math.floor(65536 / Math.max(size, 1)));
export const fromChunks = (chunks: AsyncGenerator<string | Buffer>) => Readable.from(chunks, { objectMode: false, highWaterMark: 1 });

/** Headers that describe the matrix in the binary forms, whose body holds nothing else. */
export function matrixHeaders(record: Pick<JobRecord, 'size' | 'parameters' | 'loss'> & { meta: { backend: string } | null }): Record<string, string> {
  return {
    'x-hessian-size': String(record.size),
    'x-hessian-parameters': JSON.stringify(record.parameters),
    'x-hessian-loss': String(record.loss),
    'x-hessian-backend': record.meta?.backend ?? '',
    'x-hessian-dtype': 'float32',
  };
}

/** Reads rows [first, first + count) of a finished result: from its file, or from memory (a small answer). */
export const rowReader =
  (matrix: ResultStore | Float32Array, record: JobRecord) =>
  async (first: number, count: number): Promise<Float32Array> =>
    matrix instanceof Float32Array ? matrix.subarray(first * record.size, (first + count) * record.size) : matrix.readRows(record.id, record.size, first, count);

/** An in-memory P x P matrix as a binary answer's body: raw little-endian float32, or .npy with its header. */
export function matrixBuffer(matrix: Float32Array, size: number, format: 'npy' | 'binary'): Buffer {
  const bytes = Buffer.from(matrix.buffer, matrix.byteOffset, matrix.byteLength);
  return format === 'npy' ? Buffer.concat([npyHeader(size, size), bytes]) : bytes;
}

/** In-memory answers of at most this many values are formatted as one JSON string (no stream, one write). */
const WHOLE_JSON_VALUES = VALUES_PER_TURN;

/**
 * A finished result in the asked form: a job's as a stream read from disk, never whole in memory; a
 * small synchronous answer's (the Float32Array it came back in, see the small lane) as one buffer, or
 * one JSON string when it is small enough to format in one turn, so that it leaves in one write.
 */
export async function resultBody(matrix: ResultStore | Float32Array, record: JobRecord, format: Exclude<ResultFormat, 'png'>): Promise<{ body: Readable | Buffer | string; length?: number }> {
  const header = ResultStore.headerLength(record.size);
  const matrixBytes = record.size * record.size * 4;
  if (matrix instanceof Float32Array) {
    if (format === 'json' && matrix.length > WHOLE_JSON_VALUES) return { body: fromChunks(jsonDocument(record, rowReader(matrix, record))) };
    if (format === 'json') {
      let text = '';
      for await (const chunk of jsonDocument(record, rowReader(matrix, record))) text += chunk;
      return { body: text, length: Buffer.byteLength(text) };
    }
    const body = matrixBuffer(matrix, record.size, format);
    return { body, length: body.length };
  }
  if (format === 'npy') return { body: matrix.readStream(record.id), length: header + matrixBytes };
  if (format === 'binary') return { body: matrix.readStream(record.id, header), length: matrixBytes };
  return { body: fromChunks(jsonDocument(record, rowReader(matrix, record))) };
}

async function* jsonDocument(record: JobRecord, readRows: (first: number, count: number) => Promise<Float32Array>): AsyncGenerator<string> {
  const { size, parameters, loss, gradient, meta } = record;
  yield `{"parameters":${JSON.stringify(parameters)},"size":${size},"loss":${formatFloat32(Math.fround(loss!))},`;
  yield `"gradient":${await formatRows(Float32Array.from(gradient!), size, 1)},"hessian":[`;
  const step = rowsPerRead(size);
  for (let first = 0; first < size; first += step) {
    const count = Math.min(step, size - first);
    const rows = await readRows(first, count);
    yield (first > 0 ? ',' : '') + (await formatRows(rows, size, count));
  }
  yield `],"meta":${JSON.stringify(meta)}}`;
}

/**
 * The rows of a job in row order as they are computed, from the first row whenever the client
 * connects: NDJSON lines {"offset","rows"} or raw little-endian float32 (after `header`, if given: a
 * synchronous .npy answer's). A job that fails or is cancelled midway ends an NDJSON stream with an
 * {"error"} line and aborts a binary one.
 */
export async function rowStream(manager: JobManager, store: ResultStore, job: Job, format: 'ndjson' | 'binary', header?: Buffer, unsent?: () => number | null): Promise<Readable> {
  const { size, id } = job.record;
  let sent = 0;
  // Binary: row blocks handed over as they are computed, sent as they are instead of read back from
  // disk, up to HELD_BLOCK_BYTES waiting (a client slower than the computation gets the rest from disk).
  const held = new Map<number, { values: Float32Array; release: () => void }>();
  let heldBytes = 0;
  const unsubscribe =
    format === 'binary'
      ? manager.onRows(job, (firstRow, values, release) => {
          if (firstRow < sent || heldBytes + values.byteLength > HELD_BLOCK_BYTES) return false;
          held.set(firstRow, { values, release });
          heldBytes += values.byteLength;
          releaseSent();
          return true;
        })
      : () => false;
  // Held blocks yielded, each with the answer's byte where it ends: released (for a later block to be
  // written into) once the response has let go of every byte up to there. `unsent`: the bytes the
  // response still holds past this stream (null when unknown, e.g. compressed: then none is released).
  const sending: { end: number; release: () => void }[] = [];
  let yielded = header?.length ?? 0;
  let body: Readable | undefined;
  function releaseSent() {
    const behind = body && unsent?.();
    if (behind == null) return;
    const flushed = yielded - body!.readableLength - behind;
    while (sending.length && sending[0].end <= flushed) sending.shift()!.release();
  }
  async function* rows(): AsyncGenerator<string | Buffer> {
    try {
      while (sent < size) {
        const status = job.record.status;
        if (status === 'failed' || status === 'cancelled') {
          const message = job.record.error?.message ?? `the job was ${status}`;
          if (format === 'ndjson') {
            yield `${JSON.stringify({ error: status, message })}\n`;
            return;
          }
          throw new Error(message);
        }
        if (job.contiguousRows <= sent) {
          await manager.changed(job);
          continue;
        }
        releaseSent();
        const entry = held.get(sent);
        if (entry) {
          const block = entry.values;
          sending.push({ end: yielded + block.byteLength, release: entry.release });
          held.delete(sent);
          heldBytes -= block.byteLength;
          sent += block.length / size;
          yielded += block.byteLength;
          yield Buffer.from(block.buffer, block.byteOffset, block.byteLength);
          continue;
        }
        // From disk, up to the next block held (a block arrives only beyond the rows on disk so far).
        let end = Math.min(job.contiguousRows, sent + rowsPerRead(size));
        for (const firstRow of held.keys()) if (firstRow > sent && firstRow < end) end = firstRow;
        const count = end - sent;
        const values = await store.readRows(id, size, sent, count);
        const at = sent;
        sent += count;
        yielded += values.byteLength;
        if (format === 'binary') yield Buffer.from(values.buffer, values.byteOffset, values.byteLength);
        else yield `{"offset":${at},"rows":[${await formatRows(values, size, count)}]}\n`;
      }
    } finally {
      unsubscribe();
      held.clear();
    }
  }
  const chunks = rows();
  if (format === 'ndjson') return fromChunks(chunks);
  // A binary stream has no in-band error: wait for its first rows before answering, so that a job which
  // fails before them gets its error status (a failure after that can only abort the stream).
  const first = await chunks.next();
  async function* primed(): AsyncGenerator<string | Buffer> {
    try {
      if (header) yield header;
      if (!first.done) yield first.value;
      yield* chunks;
    } finally {
      await chunks.return(undefined); // a stream ended before it got to `chunks` still lets go of the job's blocks
    }
  }
  body = fromChunks(primed());
  return body;
}
