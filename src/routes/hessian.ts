import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { inlineHessian, inlineModel, planRequest, productCost, type InlineResult, type CostEstimate, type EngineRequest, type PlacedTensor, type ProductMethod, type RequestPlan } from '../compute/index.js';
import type { Config } from '../config.js';
import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { QueueFullError, ShuttingDownError, type Job, type Submitter } from '../jobs/manager.js';
import { isFailure, type HessianAnswer } from '../jobs/protocol.js';
import { npyHeader } from '../jobs/npy.js';
import { matrixHeaders, RESULT_TYPES, rowStream, type ResultFormat } from '../jobs/results.js';
import type { JobRecord } from '../jobs/store.js';
import { takeDecodedBody } from '../plugins/body-decoders.js';
import { importRequest, RequestBody } from '../schemas/import/index.js';
import type { StoredModelRequest } from '../schemas/models.js';
import type { ServiceContext } from './context.js';
import { ApiError, errorResponses, SUBMIT_ERRORS, V1_ERRORS } from './errors.js';
import { closeWhenStalled, resultFormat, resultResponse, sendResult } from './results.js';
import { resolveModel } from './models.js';

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/**
 * Admission, from sizes alone and before any tensor exists: 413 when the matrix would exceed
 * MAX_PARAMETERS rows, the model (which `wrt` may select a small part of) MAX_MODEL_PARAMETERS, a
 * worker task's working set MAX_WORKER_MEMORY_MB even one direction at a time, or the job's
 * operations MAX_JOB_FLOPS. Each message gives the estimate and the limit. Returns the plan (path and
 * cost estimate), whose block size the job then uses; a model that cannot be computed is a 400.
 */
export function admit(request: EngineRequest, config: Config): RequestPlan {
  const { MAX_PARAMETERS: maxParameters, MAX_WORKER_MEMORY_MB: memoryMb, MAX_JOB_FLOPS: maxFlops } = config;
  const plan = planRequest(request, memoryMb * 2 ** 20);
  checkModelSize(plan.modelSize, config);
  const { size } = plan;
  if (size > maxParameters) {
    const bytes = size * size * 4;
    throw new ApiError(
      'too_many_parameters',
      `the Hessian would be ${size} x ${size} (P = ${size}); the limit MAX_PARAMETERS is ${maxParameters}; as float32 it would take ${bytes} bytes (${gib(bytes)})`,
    );
  }
  checkWorkingSet(plan.minimumBytes, plan.batch, config);
  if (plan.flops > maxFlops) {
    throw new ApiError(
      'over_compute_budget',
      `the Hessian would take about ${plan.flops.toExponential(2)} floating-point operations (P = ${size}, batch ${plan.batch}); the limit MAX_JOB_FLOPS is ${maxFlops.toExponential(2)}`,
    );
  }
  return plan;
}

/** 413 when the model has more than MAX_MODEL_PARAMETERS parameters (whatever `wrt` keeps of it). */
export function checkModelSize(modelSize: number, { MAX_MODEL_PARAMETERS: maxModel }: Config): void {
  if (modelSize > maxModel) {
    throw new ApiError('model_too_large', `the model has ${modelSize} parameters; the limit MAX_MODEL_PARAMETERS is ${maxModel}`);
  }
}

/** 413 when a task needs more than MAX_WORKER_MEMORY_MB even one direction at a time. */
function checkWorkingSet(minimumBytes: number, batch: number, { MAX_WORKER_MEMORY_MB: memoryMb }: Config): void {
  if (minimumBytes > memoryMb * 2 ** 20) {
    throw new ApiError(
      'over_memory_budget',
      `a worker would need about ${gib(minimumBytes)} (${Math.ceil(minimumBytes / 2 ** 20)} MiB) of working memory for this model and batch (batch ${batch}), even one Hessian row at a time; the limit MAX_WORKER_MEMORY_MB is ${memoryMb} MiB`,
    );
  }
}

/**
 * The cost of Hessian-vector products (what curvature quantities run on), admitted on the model's size
 * and one product's working set (see checkWorkingSet); with the tensors the products are over.
 */
export function admitWorkingSet(request: EngineRequest, config: Config): CostEstimate & { parameters: PlacedTensor[]; method: ProductMethod } {
  const budgetBytes = config.MAX_WORKER_MEMORY_MB * 2 ** 20;
  const { modelSize, parameters } = planRequest(request, budgetBytes);
  checkModelSize(modelSize, config);
  const cost = productCost(request, budgetBytes);
  checkWorkingSet(cost.minimumBytes, cost.batch, config);
  return { ...cost, parameters };
}

/**
 * The validated body as the engine's request (typed arrays), whether the main thread or a body thread
 * read it; the request lets go of the parsed body, so that a request waiting in the queue holds only its
 * tensors' bytes. A body naming a stored model is imported here, with the model the caller may see
 * (404 otherwise): nothing of the model is imported again.
 */
export async function takeEngineRequest(ctx: ServiceContext, request: FastifyRequest): Promise<EngineRequest> {
  return resolveEngineRequest(ctx, takeDecodedBody(request, 'hessianRequest'), request.client);
}

/** A decoded Hessian body as the engine's request, a stored model it names imported as the caller may see it (404 otherwise). */
export async function resolveEngineRequest(ctx: ServiceContext, decoded: EngineRequest | StoredModelRequest, client: Submitter): Promise<EngineRequest> {
  if (!('storedModelBody' in decoded)) return decoded;
  const { storedModelBody: body } = decoded;
  return importRequest(body, (await resolveModel(ctx, body.model, client)) ?? undefined);
}

/**
 * Route options of a body that carries a model and is not one of BODY_DECODERS': the importers
 * validate it (importRequest, with one message per problem and its field path, in every model format),
 * so its zod schema only documents it and fastify lets it through as it is.
 */
export const IMPORTED_BODY = { validatorCompiler: () => (data: unknown) => ({ value: data }) };

/** Maps a job that did not succeed to the error its client gets. */
export function failureOf(job: Job): ApiError {
  const { error, status } = job.record;
  if (status === 'cancelled' && error?.kind !== 'spec' && error?.kind !== 'numerical') {
    return new ApiError('cancelled', `the computation was ${error?.message ?? 'cancelled'}`);
  }
  return computeFailure(error ?? { kind: 'internal', message: 'the computation failed' });
}

/** A failure a worker reported, as the error its client gets. */
export function computeFailure(error: { kind: string; message: string }): ApiError {
  if (error.kind === 'spec') return new ApiError('invalid_request', error.message);
  if (error.kind === 'numerical') return new ApiError('numerical_error', error.message);
  if (error.kind === 'timeout') return new ApiError('job_timeout', error.message);
  return new ApiError('internal', error.message);
}

/** The largest P the small lane takes: its answer (P x P float32, 4 MiB) is kept in memory. */
export const SMALL_LANE_MAX_SIZE = 1024;

/**
 * The small lane: a synchronous request estimated at most SMALL_JOB_FLOPS (and P <= SMALL_LANE_MAX_SIZE)
 * is computed whole and answered from memory: no job record, no file, and never queued behind a job's
 * row blocks. A tiny one (INLINE_MAX_FLOPS) right here in float64 (compute/inline), else by one task
 * in the lane's own thread.
 */
const takesSmallLane = (plan: RequestPlan, config: Config) => plan.size <= SMALL_LANE_MAX_SIZE && plan.flops <= config.SMALL_JOB_FLOPS;

/**
 * The inline answer, or null when the request is not one (too costly, or a layer or loss without a
 * float64 form) or its answer is not finite (the lane then answers it, with the engine's error).
 */
function answerInline(request: EngineRequest, config: Config, reply: FastifyReply): InlineResult | null {
  if (config.INLINE_MAX_FLOPS <= 0) return null;
  try {
    const model = inlineModel(request, config.INLINE_MAX_FLOPS);
    return model && inlineHessian(model);
  } catch (error) {
    // A defect of the inline path must not cost the client its answer: the lane computes it instead.
    reply.log.error({ err: error }, 'the inline path failed; the small lane computes this request');
    return null;
  }
}

async function answerFromLane(ctx: ServiceContext, request: EngineRequest, plan: RequestPlan): Promise<HessianAnswer> {
  if (ctx.smallLane.queued >= ctx.config.MAX_QUEUED_JOBS) throw new QueueFullError(ctx.config.MAX_QUEUED_JOBS);
  let answer;
  try {
    answer = await ctx.smallLane.run({ kind: 'hessian', request, blockSize: plan.blockSize, method: plan.method });
  } catch (error) {
    throw new ApiError('internal', (error as Error).message); // the lane's thread failed (and was replaced)
  }
  if (isFailure(answer)) throw computeFailure(answer.error);
  return answer as HessianAnswer;
}

async function answerSmall(ctx: ServiceContext, request: EngineRequest, plan: RequestPlan, reply: FastifyReply, format: ResultFormat) {
  if (!ctx.manager.acceptingWork) throw new ShuttingDownError();
  const { parameters, size, loss, gradient, hessian, meta } = answerInline(request, ctx.config, reply) ?? (await answerFromLane(ctx, request, plan));
  ctx.metrics.rows.inc(size);
  const now = new Date().toISOString();
  const record: JobRecord = {
    id: randomUUID(),
    status: 'succeeded',
    createdAt: now,
    startedAt: now,
    finishedAt: now,
    expiresAt: null,
    size,
    rowsDone: size,
    parameters: parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size })),
    loss,
    gradient: Array.from(gradient),
    meta: { backend: meta.backend, dtype: meta.dtype, elapsedMs: meta.elapsedMs, method: meta.method },
  };
  return sendResult(reply, hessian, record, format, ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000);
}

/**
 * A synchronous binary answer (raw float32 or .npy) sent as its rows are computed, in row order, so
 * that sending overlaps the computation. The status and headers (Content-Length the whole matrix) wait
 * for the first rows, so that a job failing before them gets its error status; one failing after them
 * can only end the body early: the connection closes short of Content-Length, which clients detect as
 * an incomplete answer (README, "Errors after the first byte").
 */
async function sendRowsAsComputed(ctx: ServiceContext, job: Job, reply: FastifyReply, format: 'binary' | 'npy') {
  const { size } = job.record;
  const header = format === 'npy' ? npyHeader(size, size) : undefined;
  let body;
  try {
    // What the response still holds of the bytes this stream gave it (a compressed answer's encoder holds an unknown part).
    const unsent = () => (reply.raw.destroyed || reply.raw.getHeader('content-encoding') ? null : reply.raw.writableLength);
    body = await rowStream(ctx.manager, ctx.store, job, 'binary', header, unsent);
  } catch (error) {
    if (job.record.status === 'failed' || job.record.status === 'cancelled') throw failureOf(job);
    throw error;
  }
  closeWhenStalled(reply.raw, ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000);
  reply.type(RESULT_TYPES[format]).headers(matrixHeaders({ ...job.record, meta: { backend: job.backend ?? '' } }));
  reply.header('content-length', String((header?.length ?? 0) + size * size * 4));
  if (format === 'npy') reply.header('content-disposition', `attachment; filename="hessian-${job.record.id}.npy"`);
  return reply.send(body);
}

export const hessianRoutes =
  (ctx: ServiceContext): FastifyPluginAsync =>
  async (app) => {
    app.withTypeProvider<ZodTypeProvider>().post(
      '/v1/hessian',
      {
        schema: {
          operationId: 'computeHessian',
          summary: 'Compute a Hessian and answer with it',
          description:
            'Computes loss, gradient and the full P x P Hessian over all trainable parameters (or the `wrt` tensors) in this request, on the worker pool. The model in our JSON, a TF.js model.json with weightData, or a Keras to_json with weights; without `loss`, the loss the model was compiled with. Any P up to MAX_PARAMETERS; for large P prefer a job. A binary answer (octet-stream, .npy) beyond the small lane is sent as its rows are computed: a failure after its first byte closes the connection before Content-Length bytes (or the last compressed chunk), which the client must treat as a failed answer.',
          tags: ['hessian'],
          body: RequestBody,
          response: {
            200: resultResponse,
            ...errorResponses(...SUBMIT_ERRORS, ...V1_ERRORS, 'not_acceptable', 'numerical_error', 'cancelled', 'job_timeout'),
          },
        },
      },
      async (request, reply) => {
        const format = resultFormat(request);
        const body = await takeEngineRequest(ctx, request);
        const cost = admit(body, ctx.config);
        if (takesSmallLane(cost, ctx.config)) return answerSmall(ctx, body, cost, reply, format);
        const job = ctx.manager.submit(body, cost, { ephemeral: true, submitter: request.client });
        // The answer is the only use of this job: once the connection closes it is deleted when
        // finished, and first cancelled if the client went away before the whole answer was sent.
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) ctx.manager.cancel(job, 'disconnected');
          void ctx.manager
            .finished(job)
            .then(() => ctx.manager.forget(job))
            .catch((error) => request.log.error({ err: error, jobId: job.record.id }, 'could not delete a synchronous job'));
        });
        if (format === 'binary' || format === 'npy') return sendRowsAsComputed(ctx, job, reply, format);
        const record = await ctx.manager.finished(job);
        if (record.status !== 'succeeded') throw failureOf(job);
        return sendResult(reply, ctx.store, record, format, ctx.config.STREAM_WRITE_TIMEOUT_SECONDS * 1000);
      },
    );
  };
