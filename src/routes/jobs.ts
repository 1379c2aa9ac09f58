import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Job as ManagedJob, Submitter } from '../jobs/manager.js';
import { rowStream } from '../jobs/results.js';
import { isFinished, type JobRecord } from '../jobs/store.js';
import { Job, JobId } from '../schemas/api.js';
import { RequestBody } from '../schemas/import/index.js';
import type { ServiceContext } from './context.js';
import { ApiError, errorResponses, SUBMIT_ERRORS, V1_ERRORS, type ErrorCode } from './errors.js';
import { admit, failureOf, takeEngineRequest } from './hessian.js';
import { closeWhenStalled, negotiate, resultFormat, resultResponse, sendResult } from './results.js';

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
    /** The job, if it exists and the caller may see it: another key's job is answered as not found. */
    const find = (id: string, client: Submitter) => {
      const job = ctx.manager.get(id);
      if (!job || job.record.owner !== client.owner) throw new ApiError('not_found', `no job ${id} (never created, deleted, or its result expired)`);
      return job;
    };
    /** What every route of one job can answer besides its own errors. */
    const JOB_ERRORS: ErrorCode[] = [...V1_ERRORS, 'invalid_request', 'not_found'];

    api.post(
      '/v1/jobs',
      {
        schema: {
          operationId: 'createJob',
          summary: 'Queue a Hessian job',
          description: 'Same body as POST /v1/hessian. Answers at once with the job; follow links.self for progress.',
          tags: ['jobs'],
          body: RequestBody,
          response: {
            202: Job,
            ...errorResponses(...SUBMIT_ERRORS, ...V1_ERRORS),
          },
        },
      },
      async (request, reply) => {
        const body = await takeEngineRequest(ctx, request);
        const cost = admit(body, ctx.config);
        const job = await ctx.manager.submitRecorded(body, cost, request.client);
        return reply.code(202).header('location', `/v1/jobs/${job.record.id}`).send(describe(job));
      },
    );

    api.get(
      '/v1/jobs/:id',
      { schema: { operationId: 'getJob', summary: 'A job and its progress', tags: ['jobs'], params: JobId, response: { 200: Job, ...errorResponses(...JOB_ERRORS) } } },
      async (request) => describe(find(request.params.id, request.client)),
    );

    api.get(
      '/v1/jobs/:id/result',
      {
        schema: {
          operationId: 'getJobResult',
          summary: "A finished job's Hessian",
          tags: ['jobs'],
          params: JobId,
          response: { 200: resultResponse, ...errorResponses(...JOB_ERRORS, 'not_acceptable', 'not_finished', 'job_failed', 'job_cancelled') },
        },
      },
      async (request, reply) => {
        const format = resultFormat(request);
        const job = find(request.params.id, request.client);
        const { status } = job.record;
        if (status === 'queued' || status === 'running') throw new ApiError('not_finished', `job ${job.record.id} is ${status}; progress ${describe(job).progress.toFixed(3)}`);
        if (status !== 'succeeded') {
          const cause = failureOf(job);
          throw new ApiError(`job_${status}`, `job ${job.record.id} is ${status}: ${cause.message}`);
        }
        return sendResult(reply, ctx.store, job.record, format, ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000);
      },
    );

    api.get(
      '/v1/jobs/:id/stream',
      {
        schema: {
          operationId: 'streamJob',
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
            ...errorResponses(...JOB_ERRORS, 'not_acceptable', 'job_failed', 'job_cancelled'),
          },
        },
      },
      async (request, reply) => {
        const format = negotiate(request, STREAM_TYPES);
        const job = find(request.params.id, request.client);
        if (job.record.status === 'failed' || job.record.status === 'cancelled') {
          throw new ApiError(`job_${job.record.status}`, `job ${job.record.id} is ${job.record.status}`);
        }
        let stream;
        try {
          stream = await rowStream(ctx.manager, ctx.store, job, format);
        } catch (error) {
          // The job ended while its first rows were awaited (the check above saw it queued or running).
          const status = (job.record as JobRecord).status;
          if (status === 'failed' || status === 'cancelled') throw new ApiError(`job_${status}`, `job ${job.record.id} is ${status}: ${(error as Error).message}`);
          throw error;
        }
        reply.type(STREAM_TYPES[format]).header('x-hessian-size', String(job.record.size));
        closeWhenStalled(reply.raw, ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000);
        return reply.send(stream as never);
      },
    );

    api.delete(
      '/v1/jobs/:id',
      {
        schema: {
          operationId: 'deleteJob',
          summary: 'Cancel a job, or delete a finished one',
          description: 'A queued or running job is cancelled (a running one at once: its row blocks in flight are aborted) and its record answered; a finished job is deleted with its result (204).',
          tags: ['jobs'],
          params: JobId,
          response: { 200: Job, 204: z.null().describe('Deleted'), ...errorResponses(...JOB_ERRORS, 'storage_error') },
        },
      },
      async (request, reply) => {
        const job = find(request.params.id, request.client);
        if (isFinished(job.record.status)) {
          await ctx.manager.forget(job);
          return reply.code(204).send(null);
        }
        ctx.manager.cancel(job, 'request');
        return describe(job);
      },
    );
  };
