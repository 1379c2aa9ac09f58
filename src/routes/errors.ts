import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { SpecError, type FieldIssue } from '../compute/index.js';
import { QueueFullError, ResultsQuotaError, ShuttingDownError } from '../jobs/manager.js';
import { StorageError } from '../jobs/store.js';

/** An error answered as {error, message, details?} with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: FieldIssue[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Maps every error to the JSON error body; bad input is always a 4xx, never a 500. */
export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const api = toApiError(error);
  if (api.status >= 500) request.log.error({ err: error }, 'request failed');
  reply.headers(api.headers).code(api.status).type('application/json');
  return reply.send({ error: api.code, message: api.message, ...(api.details ? { details: api.details } : {}) });
}

function toApiError(error: FastifyError): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof SpecError) return new ApiError(400, 'invalid_request', error.message, error.issues);
  if (error instanceof ShuttingDownError) return new ApiError(503, 'shutting_down', error.message, undefined, { 'retry-after': '5' });
  if (error instanceof ResultsQuotaError) return new ApiError(507, 'insufficient_storage', error.message);
  if (error instanceof StorageError) return new ApiError(500, 'storage_error', error.message);
  if (error instanceof QueueFullError) {
    return new ApiError(429, 'queue_full', error.message, undefined, { 'retry-after': '5' });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'payload_too_large', `the request body is larger than MAX_BODY_BYTES (${error.message})`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'send the request body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'invalid_request', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError(400, 'invalid_request', error.message);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(400, 'invalid_json', `the request body is not valid JSON: ${error.message}`);
  }
  if (error.validation) {
    return new ApiError(400, 'invalid_request', error.message, error.validation.map((v) => ({ path: v.instancePath, message: v.message ?? '' })));
  }
  if (error instanceof SyntaxError) return new ApiError(400, 'invalid_json', `the request body is not valid JSON: ${error.message}`);
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return new ApiError(error.statusCode, 'bad_request', error.message);
  return new ApiError(500, 'internal', 'internal error; see the server log');
}
