import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Job as ManagedJob } from '../jobs/manager.js';
import { negotiate, rowStream } from '../jobs/results.js';
import { isFinished } from '../jobs/store.js';
import { Job, JobId } from '../schemas/api.js';
import { HessianRequest } from '../schemas/model.js';
import type { ServiceContext } from './context.js';
import { ApiError } from './errors.js';
import { admit, failureOf, takeCompactBody } from './hessian.js';
import { closeWhenStalled, errorResponse, resultFormat, resultResponse, sendResult } from './results.js';

const STREAM_TYPES = { ndjson: 'application/x-ndjson', binary: 'application/octet-stream' };

/** The public view of a job. */
function describe(job: ManagedJob): Job {
  const { id, status, size, rowsDone, createdAt, startedAt, finishedAt, expiresAt, error } = job.record;
  const self = `/v1/jobs/${id}`;
  return {
    id,
    status,
    progress: size ? rowsDone / size : 1,
    size,
    createdAt,
    startedAt,
    finishedAt,
    expiresAt,
    ...(error ? { error } : {}),
    links: { self, result: `${self}/result`, stream: `${self}/stream` },
  };
}

export const jobRoutes =
  (ctx: ServiceContext): FastifyPluginAsync =>
  async (app) => {
    const api = app.withTypeProvider<ZodTypeProvider>();
    const find = (id: string) => {
      const job = ctx.manager.get(id);
      if (!job) throw new ApiError(404, 'not_found', `no job ${id} (never created, deleted, or its result expired)`);
      return job;
    };
    const notFound = errorResponse('No such job, or its result expired');

    api.post(
      '/v1/jobs',
      {
        schema: {
          summary: 'Queue a Hessian job',
          description: 'Same body as POST /v1/hessian. Answers at once with the job; follow links.self for progress.',
          tags: ['jobs'],
          body: HessianRequest,
          response: {
            202: Job,
            400: errorResponse('Malformed JSON or a field that does not fit (the message names it)'),
            413: errorResponse('Body over MAX_BODY_BYTES, P over MAX_PARAMETERS, or an estimated cost over MAX_WORKER_MEMORY_MB or MAX_JOB_FLOPS'),
            429: errorResponse('The job queue is full; see Retry-After'),
            500: errorResponse('The job could not be recorded in RESULTS_DIR (storage_error)'),
            507: errorResponse('The result would not fit in MAX_RESULTS_BYTES'),
          },
        },
      },
      async (request, reply) => {
        const body = takeCompactBody(request);
        const cost = admit(body, ctx.config);
        const job = await ctx.manager.submitRecorded(body, cost);
        return reply.code(202).header('location', `/v1/jobs/${job.record.id}`).send(describe(job));
      },
    );

    api.get(
      '/v1/jobs/:id',
      { schema: { summary: 'A job and its progress', tags: ['jobs'], params: JobId, response: { 200: Job, 404: notFound } } },
      async (request) => describe(find(request.params.id)),
    );

    api.get(
      '/v1/jobs/:id/result',
      {
        schema: {
          summary: "A finished job's Hessian",
          tags: ['jobs'],
          params: JobId,
          response: { 200: resultResponse, 404: notFound, 406: errorResponse('Unsupported Accept'), 409: errorResponse('The job has not succeeded (yet)') },
        },
      },
      async (request, reply) => {
        const format = resultFormat(request.headers.accept);
        const job = find(request.params.id);
        const { status } = job.record;
        if (status === 'queued' || status === 'running') throw new ApiError(409, 'not_finished', `job ${job.record.id} is ${status}; progress ${describe(job).progress.toFixed(3)}`);
        if (status !== 'succeeded') {
          const cause = failureOf(job);
          throw new ApiError(409, `job_${status}`, `job ${job.record.id} is ${status}: ${cause.message}`);
        }
        return sendResult(reply, ctx.store, job.record, format, ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000);
      },
    );

    api.get(
      '/v1/jobs/:id/stream',
      {
        schema: {
          summary: "Stream a job's rows as they are computed",
          description:
            'From the first row, in row order, whenever you connect; ends after the last row. NDJSON lines {"offset": firstRow, "rows": [[...], ...]} by default, or raw little-endian float32 rows with Accept: application/octet-stream. A job that fails midway ends NDJSON with an {"error"} line.',
          tags: ['jobs'],
          params: JobId,
          response: {
            200: {
              description: 'Rows in order',
              content: { 'application/x-ndjson': { schema: z.string() }, 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } },
            },
            404: notFound,
            406: errorResponse('Unsupported Accept'),
            409: errorResponse('The job failed or was cancelled before streaming began'),
          },
        },
      },
      async (request, reply) => {
        const format = negotiate(request.headers.accept, STREAM_TYPES) as 'ndjson' | 'binary' | null;
        if (!format) throw new ApiError(406, 'not_acceptable', `Accept one of ${Object.values(STREAM_TYPES).join(', ')}`);
        const job = find(request.params.id);
        if (job.record.status === 'failed' || job.record.status === 'cancelled') {
          throw new ApiError(409, `job_${job.record.status}`, `job ${job.record.id} is ${job.record.status}`);
        }
        reply.type(STREAM_TYPES[format]).header('x-hessian-size', String(job.record.size));
        closeWhenStalled(reply.raw, ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000);
        return reply.send(rowStream(ctx.manager, ctx.store, job, format) as never);
      },
    );

    api.delete(
      '/v1/jobs/:id',
      {
        schema: {
          summary: 'Cancel a job, or delete a finished one',
          description: 'A queued or running job is cancelled (a running one at once: its row blocks in flight are aborted) and its record answered; a finished job is deleted with its result (204).',
          tags: ['jobs'],
          params: JobId,
          response: {
            200: Job,
            204: z.null().describe('Deleted'),
            404: notFound,
            500: errorResponse('The files could not be deleted (storage_error); the job is kept as it was'),
          },
        },
      },
      async (request, reply) => {
        const job = find(request.params.id);
        if (isFinished(job.record.status)) {
          await ctx.manager.forget(job);
          return reply.code(204).send(null);
        }
        ctx.manager.cancel(job, 'request');
        return describe(job);
      },
    );
  };
