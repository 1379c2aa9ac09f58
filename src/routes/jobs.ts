import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { FastifyReply } from 'fastify';
import { isMatrixQuantity, productBudget } from '../compute/quantities/index.js';
import { curvatureDocument, curvatureForms, curvaturePicture, documentBytesBound, type CurvatureHead } from '../jobs/curvature-results.js';
import type { Job as ManagedJob, Submitter } from '../jobs/manager.js';
import { fromChunks, RESULT_TYPES, rowReader, rowStream, type ResultFormat } from '../jobs/results.js';
import { hasDocument, isFinished, matrixBytes, type JobRecord, type ResultStore } from '../jobs/store.js';
import { takeDecodedBody } from '../plugins/body-decoders.js';
import { Job, JobId } from '../schemas/api.js';
import { CurvatureJson } from '../schemas/curvature.js';
import { JobRequest } from '../schemas/jobs.js';
import type { ServiceContext } from './context.js';
import { admitCurvature, type CurvaturePlan } from './curvature.js';
import { ApiError, errorResponses, SUBMIT_ERRORS, V1_ERRORS, type ErrorCode } from './errors.js';
import { admit, failureOf, resolveEngineRequest } from './hessian.js';
import { closeWhenStalled, negotiate, resultResponse, sendResult } from './results.js';

const STREAM_TYPES = { ndjson: 'application/x-ndjson', binary: 'application/octet-stream' };

/** The public view of a job. */
function describe(job: ManagedJob): Job {
  const { id, status, size, rowsDone, createdAt, startedAt, finishedAt, expiresAt, error, curvature } = job.record;
  const self = `/v1/jobs/${id}`;
  return {
    id,
    status,
    ...(curvature ? { quantity: curvature.quantity, ...(curvature.matrix ? { matrix: curvature.matrix } : {}) } : {}),
    progress: curvature ? curvature.progress : size ? rowsDone / size : 1,
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
    /**
     * The job, if it exists and the caller may see it: another key's job is answered as not found, and so
     * is a synchronous request's (it is its answer's alone, and the rows its stream held are not on disk).
     */
    const find = (id: string, client: Submitter) => {
      const job = ctx.manager.get(id);
      if (!job || job.ephemeral || job.record.owner !== client.owner) throw new ApiError('not_found', `no job ${id} (never created, deleted, or its result expired)`);
      return job;
    };
    /** What every route of one job can answer besides its own errors. */
    const JOB_ERRORS: ErrorCode[] = [...V1_ERRORS, 'invalid_request', 'not_found'];

    api.post(
      '/v1/jobs',
      {
        schema: {
          operationId: 'createJob',
          summary: 'Queue a Hessian or curvature job',
          description:
            'The body of POST /v1/hessian, or with "quantity" the body of POST /v1/curvature. Answers at once with the job; follow links.self for progress, links.result for the answer (as that endpoint would have given it).',
          tags: ['jobs'],
          body: JobRequest,
          response: {
            202: Job,
            ...errorResponses(...SUBMIT_ERRORS, ...V1_ERRORS),
          },
        },
      },
      async (request, reply) => {
        const decoded = takeDecodedBody(request, 'jobRequest');
        let job;
        if ('curvature' in decoded) {
          const plan = await admitCurvature(ctx, decoded.curvature, request.client);
          job = await ctx.manager.submitRecorded(plan.engine, { ...plan, method: 'rOperator' }, request.client, curvatureWork(plan));
        } else {
          const body = await resolveEngineRequest(ctx, decoded.hessian, request.client);
          job = await ctx.manager.submitRecorded(body, admit(body, ctx.config), request.client);
        }
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
          summary: "A finished job's Hessian, or its curvature answer",
          description:
            "A Hessian job's matrix in the forms POST /v1/hessian gives; a curvature job's answer exactly as POST /v1/curvature gives it (JSON; ggn and fisher also float32, .npy and a heatmap; density also a plot).",
          tags: ['jobs'],
          params: JobId,
          response: {
            200: { ...resultResponse, content: { ...resultResponse.content, 'application/json': { schema: z.union([resultResponse.content['application/json'].schema, CurvatureJson]) } } },
            ...errorResponses(...JOB_ERRORS, 'not_acceptable', 'not_finished', 'job_failed', 'job_cancelled'),
          },
        },
      },
      async (request, reply) => {
        const job = find(request.params.id, request.client);
        const { record } = job;
        const format = negotiate(request, record.curvature ? curvatureForms(record.curvature.quantity) : RESULT_TYPES);
        const { status } = record;
        if (status === 'queued' || status === 'running') throw new ApiError('not_finished', `job ${record.id} is ${status}; progress ${describe(job).progress.toFixed(3)}`);
        if (status !== 'succeeded') {
          const cause = failureOf(job);
          throw new ApiError(`job_${status}`, `job ${record.id} is ${status}: ${cause.message}`);
        }
        const writeTimeoutMs = ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000;
        if (record.curvature) return sendCurvatureResult(reply, ctx.store, record, format, writeTimeoutMs);
        return sendResult(reply, ctx.store, record, format, writeTimeoutMs);
      },
    );

    api.get(
      '/v1/jobs/:id/stream',
      {
        schema: {
          operationId: 'streamJob',
          summary: "Stream a job's rows as they are computed",
          description:
            'From the first row, in row order, whenever you connect; ends after the last row. NDJSON lines {"offset": firstRow, "rows": [[...], ...]} by default, or raw little-endian float32 rows with Accept: application/octet-stream. A job that fails midway ends NDJSON with an {"error"} line. A curvature job is computed whole, not in rows: 409 not_streamable (GET its /result).',
          tags: ['jobs'],
          params: JobId,
          response: {
            200: {
              description: 'Rows in order',
              content: { 'application/x-ndjson': { schema: z.string() }, 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } },
            },
            ...errorResponses(...JOB_ERRORS, 'not_acceptable', 'job_failed', 'job_cancelled', 'not_streamable'),
          },
        },
      },
      async (request, reply) => {
        const format = negotiate(request, STREAM_TYPES);
        const job = find(request.params.id, request.client);
        if (job.record.curvature) {
          const { id, curvature } = job.record;
          throw new ApiError('not_streamable', `job ${id} computes the ${curvature.quantity}, which comes whole, not in rows: GET /v1/jobs/${id}/result once it has finished`);
        }
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

/** What the manager runs for an admitted curvature request: its query, the products its progress counts and its result's size. */
function curvatureWork(plan: CurvaturePlan) {
  const { query, head, size } = plan;
  const resultBytes = isMatrixQuantity(head.quantity) ? matrixBytes(size) : documentBytesBound(query, head);
  return { query, head, products: productBudget(query, size), resultBytes };
}

/**
 * A curvature job's answer in the negotiated form: its JSON document from disk (a matrix quantity's
 * written around its rows, read from the matrix file a few at a time), the matrix's binary forms as a
 * Hessian's, or its picture.
 */
async function sendCurvatureResult(reply: FastifyReply, store: ResultStore, record: JobRecord, format: ResultFormat, writeTimeoutMs: number) {
  const { parameters, size, curvature } = record;
  const head: CurvatureHead = { parameters, size, quantity: curvature!.quantity, ...(curvature!.matrix ? { matrix: curvature!.matrix } : {}) };
  const readRows = hasDocument(record) ? undefined : rowReader(store, record);
  if (format === 'png') {
    const fields = readRows ? {} : JSON.parse(await store.readDocument(record.id));
    return reply.type(RESULT_TYPES.png).send(await curvaturePicture(head, fields, readRows));
  }
  if (format !== 'json') return sendResult(reply, store, record, format, writeTimeoutMs);
  closeWhenStalled(reply.raw, writeTimeoutMs);
  reply.type(RESULT_TYPES.json);
  if (readRows) return reply.send(fromChunks(curvatureDocument(head, record.loss!, {}, record.meta!, readRows)));
  return reply.header('content-length', String(curvature!.resultBytes)).send(store.documentStream(record.id));
}
