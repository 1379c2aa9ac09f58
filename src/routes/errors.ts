import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { SpecError, type FieldIssue } from '../compute/index.js';
import { CONTENT_ENCODINGS } from '../plugins/compression.js';
import { ClientQueueFullError, QueueFullError, ResultsQuotaError, ShuttingDownError } from '../jobs/manager.js';
import { StorageError } from '../jobs/store.js';
import { ErrorBody } from '../schemas/api.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The body types a route takes, as its 415 names them (default application/json). */
    bodyTypes?: string;
  }
}

interface ErrorInfo {
  status: number;
  /** When it is answered: the README's and the OpenAPI document's wording. */
  when: string;
  example: string;
  /** Sent as Retry-After (seconds) with every answer of this code. */
  retryAfter?: number;
}

/**
 * Every error code the API answers with, declared once: the handlers throw them by code, and the
 * OpenAPI document lists them (with an example) under each route that can give them.
 */
export const ERRORS = {
  invalid_json: { status: 400, when: 'the body is not JSON', example: 'the request body is not valid JSON: Unexpected end of JSON input' },
  invalid_request: {
    status: 400,
    when: 'a field is missing, has the wrong type, or does not fit; the message names the field, the bad value and what is accepted',
    example: "loss: 'meanSquaredErr' is not a known loss; accepted: meanSquaredError, meanAbsoluteError, huber, categoricalCrossentropy, sparseCategoricalCrossentropy, binaryCrossentropy",
  },
  invalid_compressed_body: { status: 400, when: 'a compressed body (Content-Encoding) that does not decompress', example: 'the request body is not valid gzip data (Content-Encoding: gzip)' },
  invalid_multipart: {
    status: 400,
    when: 'a multipart/form-data upload (POST /v1/models) that cannot be read as multipart',
    example: 'the multipart/form-data body cannot be read: Unexpected end of form',
  },
  bad_request: { status: 400, when: 'any other malformed HTTP request', example: 'Bad Request' },
  unauthorized: {
    status: 401,
    when: 'API_KEYS is set and the request carries no key (Authorization: Bearer KEY, or X-API-Key)',
    example: 'this server needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>',
  },
  forbidden: { status: 403, when: 'API_KEYS is set and the key sent is not one of them', example: 'the API key sent is not valid on this server' },
  not_found: { status: 404, when: 'unknown job or stored model, deleted, expired, or created with another API key', example: 'no job 2b7c1f5e-0d7a-4a53-9a4e-6b7c2f1d9e21 (never created, deleted, or its result expired)' },
  not_acceptable: {
    status: 406,
    when: '`Accept` names no form served (q-values are honoured; q=0 refuses a form)',
    example: 'Accept: text/html names no form served here; accepted: application/json, application/octet-stream, application/x-npy',
  },
  not_finished: { status: 409, when: 'a result asked for before the job finished', example: 'job 2b7c1f5e-0d7a-4a53-9a4e-6b7c2f1d9e21 is running; progress 0.420' },
  job_failed: { status: 409, when: "a result or stream of a job that failed", example: 'job 2b7c1f5e-0d7a-4a53-9a4e-6b7c2f1d9e21 is failed: the loss is not finite' },
  job_cancelled: { status: 409, when: 'a result or stream of a job that was cancelled', example: 'job 2b7c1f5e-0d7a-4a53-9a4e-6b7c2f1d9e21 is cancelled' },
  not_streamable: {
    status: 409,
    when: "the stream of a curvature job: its answer is computed whole, not in rows; GET the job's /result",
    example: "job 2b7c1f5e-0d7a-4a53-9a4e-6b7c2f1d9e21 computes the eigenvalues, which come whole: GET /v1/jobs/2b7c1f5e-0d7a-4a53-9a4e-6b7c2f1d9e21/result once it has finished",
  },
  payload_too_large: {
    status: 413,
    when: 'body over `MAX_BODY_BYTES`; for a compressed body, its decompressed size counts',
    example: 'the request body is larger than MAX_BODY_BYTES (33554432 bytes; a compressed body counts decompressed)',
  },
  too_many_parameters: {
    status: 413,
    when: 'P over `MAX_PARAMETERS`; the message gives P, the limit and the matrix size in bytes',
    example: 'the Hessian would be 30000 x 30000 (P = 30000); the limit MAX_PARAMETERS is 20000; as float32 it would take 3600000000 bytes (3.35 GiB)',
  },
  model_too_large: {
    status: 413,
    when: 'the model has more than `MAX_MODEL_PARAMETERS` parameters (e.g. a huge seeded layer of which `wrt` keeps a little)',
    example: 'the model has 12000000 parameters; the limit MAX_MODEL_PARAMETERS is 10000000',
  },
  over_memory_budget: {
    status: 413,
    when: 'the estimated working memory of one compute task exceeds `MAX_WORKER_MEMORY_MB` even one direction at a time; the message gives the estimate and the limit',
    example: 'a worker would need about 3.20 GiB (3277 MiB) of working memory for this model and batch (batch 100000), even one Hessian row at a time; the limit MAX_WORKER_MEMORY_MB is 2048 MiB',
  },
  over_compute_budget: {
    status: 413,
    when: 'the estimated operations of the whole job exceed `MAX_JOB_FLOPS`; the message gives the estimate and the limit',
    example: 'the Hessian would take about 2.40e+13 floating-point operations (P = 19158, batch 20000); the limit MAX_JOB_FLOPS is 1.00e+13',
  },
  unsupported_media_type: {
    status: 415,
    when: 'body not sent as `application/json` (or, for POST /v1/models, `multipart/form-data`)',
    example: 'send the request body as application/json',
  },
  unsupported_content_encoding: {
    status: 415,
    when: 'a `Content-Encoding` other than gzip, deflate, br or identity',
    example: "Content-Encoding 'compress' is not supported; accepted: gzip, deflate, br, identity",
  },
  numerical_error: { status: 422, when: 'loss, gradient or Hessian not finite as float32 on this data (e.g. log 0, or a loss above 3.4e38); the message names the quantity', example: 'the loss is not finite on this data (log of 0?)' },
  queue_full: { status: 429, when: '`MAX_QUEUED_JOBS` waiting, or the waiting requests would hold more than `MAX_QUEUED_BYTES`; retry after `Retry-After` seconds', example: 'the job queue is full (64 jobs waiting); retry later', retryAfter: 5 },
  client_queue_full: {
    status: 429,
    when: 'this client (API key, or IP address without keys) already has `MAX_JOBS_PER_CLIENT` jobs queued or running',
    example: 'this client already has 4 jobs queued or running (MAX_JOBS_PER_CLIENT); retry when one has finished',
    retryAfter: 5,
  },
  rate_limited: {
    status: 429,
    when: 'more than `RATE_LIMIT_PER_MINUTE` requests in a minute from this client; `Retry-After` says when the window reopens',
    example: 'more than 60 requests in a minute from this client (RATE_LIMIT_PER_MINUTE); retry in 42 seconds',
  },
  storage_error: {
    status: 500,
    when: '`RESULTS_DIR` could not be written: a new job that cannot be recorded is refused; a `DELETE` whose files cannot be deleted changes nothing',
    example: 'could not record the new job in RESULTS_DIR: ENOSPC: no space left on device',
  },
  internal: { status: 500, when: 'a failure on the server side (a compute thread that trapped or ran out of memory: only that request or job fails, the cause in the message); never bad input', example: 'internal error; see the server log' },
  shutting_down: { status: 503, when: 'the server got SIGTERM and takes no new jobs', example: 'the server is shutting down and takes no new jobs', retryAfter: 5 },
  cancelled: { status: 503, when: 'a synchronous request whose computation was cancelled; the message says why (e.g. the server shut down)', example: 'the computation was cancelled: the server shut down before the job started' },
  job_timeout: {
    status: 504,
    when: 'the computation ran longer than `JOB_TIMEOUT_SECONDS` and was stopped (a job keeps the reason in `error`)',
    example: 'the job ran longer than JOB_TIMEOUT_SECONDS (3600 s) and was stopped',
  },
  insufficient_storage: {
    status: 507,
    when: "the result's matrix, or an uploaded model, would not fit in `MAX_RESULTS_BYTES` next to the results and models held; the message gives both sizes",
    example: 'the result needs 1600000128 bytes on disk but 16000000000 of the MAX_RESULTS_BYTES quota of 17179869184 bytes are held by other results and stored models; delete finished jobs (DELETE /v1/jobs/:id) or models (DELETE /v1/models/:id), or retry once they have expired',
  },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERRORS;

/** An error answered as {error, message, details?} with the status its code is declared with. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: FieldIssue[],
  ) {
    super(message);
    this.status = ERRORS[code].status;
  }
}

/** Maps every error to the JSON error body; bad input is always a 4xx, never a 500. */
export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const api = toApiError(error, request);
  if (api.status >= 500) request.log.error({ err: error }, 'request failed');
  const retryAfter = (ERRORS[api.code] as ErrorInfo).retryAfter;
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
  reply.code(api.status).type('application/json');
  return reply.send({ error: api.code, message: api.message, ...(api.details ? { details: api.details } : {}) });
}

function toApiError(error: FastifyError, request: FastifyRequest): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof SpecError) return new ApiError('invalid_request', error.message, error.issues);
  if (error instanceof ShuttingDownError) return new ApiError('shutting_down', error.message);
  if (error instanceof ResultsQuotaError) return new ApiError('insufficient_storage', error.message);
  if (error instanceof StorageError) return new ApiError('storage_error', error.message);
  if (error instanceof QueueFullError) return new ApiError('queue_full', error.message);
  if (error instanceof ClientQueueFullError) return new ApiError('client_queue_full', error.message);
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', `the request body is larger than MAX_BODY_BYTES (${error.message}; a compressed body counts decompressed)`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', `send the request body as ${request.routeOptions.config?.bodyTypes ?? 'application/json'}`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('invalid_request', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('bad_request', error.message);
    case 'FST_CP_ERR_INVALID_CONTENT_ENCODING':
      return new ApiError(
        'unsupported_content_encoding',
        `Content-Encoding '${request.headers['content-encoding']}' is not supported; accepted: ${[...CONTENT_ENCODINGS, 'identity'].join(', ')}`,
      );
    case 'FST_CP_ERR_INVALID_CONTENT':
      return new ApiError('invalid_compressed_body', `the request body does not decompress as its Content-Encoding says (${error.message})`);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('invalid_json', `the request body is not valid JSON: ${error.message}`);
  }
  if (error.validation) {
    return new ApiError('invalid_request', error.message, error.validation.map((v) => ({ path: v.instancePath, message: v.message ?? '' })));
  }
  if (error instanceof SyntaxError) return new ApiError('invalid_json', `the request body is not valid JSON: ${error.message}`);
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return new ApiError('bad_request', error.message);
  return new ApiError('internal', ERRORS.internal.example);
}

/** What any /v1 route can answer: a missing or unknown key (with API_KEYS), the rate limit, a fault. */
export const V1_ERRORS: ErrorCode[] = ['unauthorized', 'forbidden', 'rate_limited', 'internal'];

/** What a route that takes a request body (a model, a loss, data) can answer on reading and admitting it. */
export const BODY_ERRORS: ErrorCode[] = [
  'invalid_json', 'invalid_request', 'invalid_compressed_body', 'bad_request', 'payload_too_large', 'too_many_parameters', 'model_too_large',
  'over_memory_budget', 'over_compute_budget', 'unsupported_media_type', 'unsupported_content_encoding',
  // {"model": {"id"}} naming no stored model the caller may see.
  'not_found',
];

/** What a route that queues a job can answer besides BODY_ERRORS and V1_ERRORS. */
export const SUBMIT_ERRORS: ErrorCode[] = [...BODY_ERRORS, 'queue_full', 'client_queue_full', 'storage_error', 'shutting_down', 'insufficient_storage'];

/**
 * OpenAPI responses for the error codes a route can give: one entry per status, its description
 * listing the codes and when each happens, the `error` field limited to those codes, and an example.
 */
export function errorResponses(...codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERRORS[code].status, [...(byStatus.get(ERRORS[code].status) ?? []), code]);
  return Object.fromEntries(
    [...byStatus].map(([status, group]) => {
      const schema = ErrorBody.extend({ error: z.enum(group as [ErrorCode, ...ErrorCode[]]).describe('What went wrong, as a code') }).meta({
        examples: [{ error: group[0], message: ERRORS[group[0]].example }],
      });
      const description = group.map((code) => `\`${code}\`: ${ERRORS[code].when}`).join('; ');
      return [status, { description, content: { 'application/json': { schema } } }];
    }),
  );
}
