import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { matrixHeaders, RESULT_TYPES, resultBody, rowReader, type ResultFormat } from '../jobs/results.js';
import type { JobRecord, ResultStore } from '../jobs/store.js';
import { heatmapPng } from '../pictures/heatmap.js';
import { HessianJson } from '../schemas/api.js';
import { ApiError } from './errors.js';

/**
 * The form (a key of `offered`) the client's Accept header prefers, q-values weighed by
 * @fastify/accepts; on a tie, or with no Accept or a wildcard, the first offered. 406 when none fits.
 */
export function negotiate<Format extends string>(request: FastifyRequest, offered: Partial<Record<Format, string>>): Format {
  const types = Object.values(offered) as string[];
  const best = request.accepts().type(types);
  if (!best) throw new ApiError('not_acceptable', `Accept: ${request.headers.accept} names no form served here; accepted: ${types.join(', ')}`);
  return (Object.keys(offered) as Format[]).find((format) => offered[format] === best)!;
}

/** The result form the client accepts, or 406. */
export const resultFormat = (request: FastifyRequest): ResultFormat => negotiate(request, RESULT_TYPES);

/**
 * Closes a response whose client has stopped reading: when its buffered output has not drained for
 * `timeoutMs` (STREAM_WRITE_TIMEOUT_SECONDS), the connection is destroyed, which ends the stream
 * feeding it. A stream waiting for rows still being computed is not stalled: nothing is buffered.
 */
export function closeWhenStalled(res: ServerResponse, timeoutMs: number): void {
  let waitingSince: number | null = null;
  const drained = () => {
    waitingSince = null;
  };
  const timer = setInterval(
    () => {
      if (!res.writableNeedDrain) return drained();
      waitingSince ??= Date.now();
      if (Date.now() - waitingSince >= timeoutMs) res.destroy();
    },
    Math.max(50, Math.min(1000, timeoutMs / 4)),
  );
  timer.unref();
  res.on('drain', drained);
  res.once('close', () => clearInterval(timer));
}

/**
 * Sends a finished result (from disk, or a small answer's matrix in memory) in the negotiated form; a
 * client that stops reading is cut off after writeTimeoutMs.
 */
export async function sendResult(reply: FastifyReply, matrix: ResultStore | Float32Array, record: JobRecord, format: ResultFormat, writeTimeoutMs: number) {
  if (format === 'png') {
    const png = await heatmapPng('Hessian', record.size, record.parameters, rowReader(matrix, record));
    return reply.type(RESULT_TYPES.png).headers(matrixHeaders(record)).send(png);
  }
  closeWhenStalled(reply.raw, writeTimeoutMs);
  const { body, length } = await resultBody(matrix, record, format);
  reply.type(RESULT_TYPES[format]);
  if (format !== 'json') reply.headers(matrixHeaders(record));
  if (format === 'npy') reply.header('content-disposition', `attachment; filename="hessian-${record.id}.npy"`);
  if (length !== undefined) reply.header('content-length', String(length));
  return reply.send(body);
}

const binary = z.string().meta({ format: 'binary' });

/** OpenAPI description of a result response in its three forms. */
export const resultResponse = {
  description: 'The Hessian: JSON by default; Accept application/octet-stream for the P x P float32 matrix (little-endian, row-major, nothing else; X-Hessian-Size and X-Hessian-Parameters headers describe it), application/x-npy for a NumPy .npy file, or image/png for a heatmap (symmetric log colours, tensor boundaries and names, block maxima past 512 rows)',
  content: {
    'application/json': { schema: HessianJson },
    'application/octet-stream': { schema: binary },
    'application/x-npy': { schema: binary },
    'image/png': { schema: binary },
  },
};

