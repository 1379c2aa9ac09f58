import fastifyCompress from '@fastify/compress';
import type { FastifyPluginAsync } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { constants } from 'node:zlib';

export const CONTENT_ENCODINGS = ['br', 'gzip', 'deflate'] as const;

/**
 * Request bodies sent with Content-Encoding gzip, deflate or br are decompressed before parsing, so
 * MAX_BODY_BYTES counts their decompressed size (a zip bomb stops at the limit with 413). Answers are
 * compressed when Accept-Encoding asks (q-values honoured): JSON, NDJSON, and also .npy and raw float32.
 */
export const compressionPlugin: FastifyPluginAsync = fastifyPlugin(async (app) => {
  await app.register(fastifyCompress, {
    global: true,
    encodings: [...CONTENT_ENCODINGS],
    requestEncodings: [...CONTENT_ENCODINGS, 'identity'],
    customTypes: /^(application\/(json|x-ndjson|octet-stream|x-npy)|text\/)/,
    // Every write is flushed: a stream of rows reaches the client as the rows are computed, not when
    // the compressor's buffer fills. (Writes are large, about 1 MB of values, so this costs little.)
    zlibOptions: { flush: constants.Z_SYNC_FLUSH },
    brotliOptions: { flush: constants.BROTLI_OPERATION_FLUSH },
  });
});
