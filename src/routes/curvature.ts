import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SpecError, type EngineRequest, type PlacedTensor } from '../compute/index.js';
import { diagonalPlan, graphStructure } from '../compute/graph/index.js';
import { isMatrixQuantity, KRYLOV_BUDGET_BYTES, maxEigenBasis, productBudget, type CurvatureQuery } from '../compute/quantities/index.js';
import { isFailure, type CurvatureAnswer } from '../jobs/protocol.js';
import { curvatureDocumentText, curvatureForms, curvaturePicture, type CurvatureHead } from '../jobs/curvature-results.js';
import { matrixBuffer, matrixHeaders, RESULT_TYPES } from '../jobs/results.js';
import { CURVATURE_DEFAULTS, CurvatureJson, CurvatureOptions, CurvatureRequest, curvatureQuery, vectorsIssue } from '../schemas/curvature.js';
import { importRequest } from '../schemas/import/index.js';
import { resolveModel } from './models.js';
import type { Config } from '../config.js';
import type { ServiceContext } from './context.js';
import { QueueFullError, ShuttingDownError, type Submitter } from '../jobs/manager.js';
import { ApiError, BODY_ERRORS, errorResponses, V1_ERRORS } from './errors.js';
import { admit, admitWorkingSet, computeFailure } from './hessian.js';
import { takeDecodedBody, type CurvatureBody } from '../plugins/body-decoders.js';
import { negotiate } from './results.js';

const binary = z.string().meta({ format: 'binary' });

/** A curvature request admitted: its engine request and query, the tensors and P, and the directions per product. */
export interface CurvaturePlan {
  engine: EngineRequest;
  query: CurvatureQuery;
  parameters: PlacedTensor[];
  size: number;
  blockSize: number;
  /** The head of its answer (see curvatureDocument). */
  head: CurvatureHead;
}

/**
 * A decoded curvature body (a stored model resolved for the caller, 404 otherwise) admitted before
 * anything is allocated: the quantities the model offers, the matrix limit (ggn, fisher) or the
 * products' cost, and the hvp vectors' length.
 */
export async function admitCurvature(ctx: ServiceContext, decoded: CurvatureBody, client: Submitter): Promise<CurvaturePlan> {
  const body = decoded.options;
  const engine =
    'storedModelBody' in decoded ? importRequest(decoded.storedModelBody, (await resolveModel(ctx, decoded.storedModelBody.model, client)) ?? undefined) : decoded.engine;
  const { parameters, size, blockSize } = isMatrixQuantity(body.quantity) ? admit(engine, ctx.config) : admitProducts(engine, body, ctx.config);
  const badVectors = vectorsIssue(body, size, engine.wrt !== undefined);
  if (badVectors) throw new SpecError([badVectors]);
  const head: CurvatureHead = {
    parameters: parameters.map(({ name, shape, offset, size: n }) => ({ name, shape, offset, size: n })),
    size,
    quantity: body.quantity,
    ...(isMatrixQuantity(body.quantity) ? {} : { matrix: body.matrix ?? CURVATURE_DEFAULTS.matrix }),
  };
  return { engine, query: curvatureQuery(body), parameters, size, blockSize, head };
}

/**
 * POST /v1/curvature: one quantity computed whole in one worker of the pool. The dense matrices (ggn,
 * fisher) keep MAX_PARAMETERS and come in the forms /v1/hessian gives; every other quantity needs only
 * products and works up to MAX_MODEL_PARAMETERS, within the Krylov memory budget.
 */
export const curvatureRoutes =
  (ctx: ServiceContext): FastifyPluginAsync =>
  async (app) => {
    // Curvature requests run whole in one task each, beside the job queue: at most MAX_QUEUED_JOBS at
    // once (429 beyond), none accepted while shutting down, and every one still running is aborted then.
    const running = new Set<AbortController>();
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
      for (const controller of running) controller.abort();
    });
    app.withTypeProvider<ZodTypeProvider>().post(
      '/v1/curvature',
      {
        schema: {
          operationId: 'computeCurvature',
          summary: 'Curvature beyond the full Hessian',
          description:
            'Hessian-, GGN- or Fisher-vector products; the generalized Gauss-Newton or empirical Fisher matrix (JSON, .npy or float32, P <= MAX_PARAMETERS); the exact diagonal; extreme eigenvalues (block Lanczos); the trace (exact or Hutchinson); the spectral density (stochastic Lanczos quadrature). `matrix` picks hessian (default), ggn or fisher.',
          tags: ['curvature'],
          body: CurvatureRequest,
          response: {
            200: {
              description: 'JSON; for ggn and fisher also application/x-npy or application/octet-stream (P x P float32, as /v1/hessian) and image/png (heatmap); for density also image/png (plot)',
              content: {
                'application/json': { schema: CurvatureJson },
                'application/octet-stream': { schema: binary },
                'application/x-npy': { schema: binary },
                'image/png': { schema: binary },
              },
            },
            ...errorResponses(...BODY_ERRORS, ...V1_ERRORS, 'not_acceptable', 'numerical_error', 'queue_full', 'shutting_down', 'cancelled'),
          },
        },
      },
      async (request, reply) => {
        const decoded = takeDecodedBody(request, 'curvatureRequest');
        const format = negotiate(request, curvatureForms(decoded.options.quantity));
        const { engine, query, blockSize, head } = await admitCurvature(ctx, decoded, request.client);

        if (closing) throw new ShuttingDownError();
        if (running.size >= ctx.config.MAX_QUEUED_JOBS) throw new QueueFullError(ctx.config.MAX_QUEUED_JOBS);
        const task = { kind: 'curvature' as const, request: engine, query, blockSize };
        const controller = new AbortController();
        running.add(controller);
        // A client that leaves before its answer frees the worker (the thread is replaced); after the
        // answer, aborting a finished task does nothing.
        const leave = () => controller.abort();
        reply.raw.once('close', leave);
        let answer;
        try {
          answer = await ctx.pool.run(task, controller.signal);
        } catch (error) {
          if (controller.signal.aborted) throw new ApiError('cancelled', 'the computation was cancelled (the client left or the server is shutting down)');
          throw error;
        } finally {
          running.delete(controller);
          reply.raw.off('close', leave);
        }
        if (isFailure(answer)) throw computeFailure(answer.error);
        const result = answer as CurvatureAnswer;
        const { matrix } = result;
        const readRows = matrix ? async (first: number, count: number) => matrix.subarray(first * head.size, (first + count) * head.size) : undefined;
        if (format === 'png') return sendPicture(reply, await curvaturePicture(head, result.fields, readRows));
        if (format !== 'json') return sendMatrix(reply, format, result, head);
        reply.type('application/json');
        return reply.send(await curvatureDocumentText(head, result.loss, result.fields, result.meta, readRows));
      },
    );
  };

/**
 * Admission of a quantity made of products, before anything is allocated: the model size, one
 * product's working set (as a Hessian row's), the Krylov memory budget, and the operations: about a
 * Hessian row's per product (the GGN and Fisher cost no more), times the products the quantity runs.
 */
function admitProducts(request: EngineRequest, body: CurvatureOptions, config: Config): ReturnType<typeof admitWorkingSet> {
  const cost = admitWorkingSet(request, config);
  const { size } = cost;
  checkKrylovBudget(body, size);
  const diagonal = cost.method === 'graph' && exactDiagonal(body) ? diagonalPlan(request, graphStructure(request), body.matrix ?? CURVATURE_DEFAULTS.matrix) : null;
  const products = diagonal?.directions ?? productCount(body, size, request);
  const flops = diagonal?.flops ?? (cost.flops / size) * products;
  if (flops > config.MAX_JOB_FLOPS) {
    throw new ApiError(
      'over_compute_budget',
      `${body.quantity} would take about ${products} curvature products, ${flops.toExponential(2)} floating-point operations (P = ${size}); the limit MAX_JOB_FLOPS is ${config.MAX_JOB_FLOPS.toExponential(2)}`,
    );
  }
  return cost;
}

/** Whether the quantity is an exact diagonal (or its sum): a graph model's is costed by its own plan (diagonalPlan). */
const exactDiagonal = (body: CurvatureOptions) => body.quantity === 'diagonal' || (body.quantity === 'trace' && (body.method ?? CURVATURE_DEFAULTS.method) === 'exact');

/** Products a quantity runs (productBudget); a dense stack's exact diagonal as many as the factors' widest block, the widest layer. */
function productCount(body: CurvatureOptions, size: number, request: EngineRequest): number {
  const widest = Math.max(1, ...request.model.nodes.map((node) => ('units' in node.config ? node.config.units : 1)));
  return productBudget(curvatureQuery(body), size) || widest;
}

/** 400 when the Krylov bases would outgrow their memory budget, naming the fields to lower. */
function checkKrylovBudget(body: CurvatureOptions, size: number): void {
  const budgetMb = KRYLOV_BUDGET_BYTES / 2 ** 20;
  if (body.quantity === 'eigenvalues') {
    const k = body.k ?? CURVATURE_DEFAULTS.k;
    const basis = maxEigenBasis(size);
    if (2 * k > basis && k < size) {
      throw new ApiError('invalid_request', `k = ${k} needs a Lanczos basis of at least ${2 * k} vectors, but at P = ${size} only ${basis} fit in ${budgetMb} MB; ask for k <= ${Math.floor(basis / 2)}`, [{ path: 'k', message: `at most ${Math.floor(basis / 2)} at P = ${size}` }]);
    }
  }
  if (body.quantity === 'density') {
    const runs = body.runs ?? CURVATURE_DEFAULTS.runs;
    const steps = Math.min(body.steps ?? CURVATURE_DEFAULTS.steps, size);
    const bytes = runs * steps * size * 4;
    if (bytes > KRYLOV_BUDGET_BYTES) {
      throw new ApiError('invalid_request', `runs x steps x P = ${runs} x ${steps} x ${size} float32 would take ${(bytes / 2 ** 20).toFixed(0)} MB of Lanczos vectors; the budget is ${budgetMb} MB: lower runs or steps`, [{ path: 'steps', message: `runs x steps must be at most ${Math.floor(KRYLOV_BUDGET_BYTES / (4 * size))} at P = ${size}` }]);
    }
  }
}

// The 200 schema is JSON's; a picture or binary body bypasses its serializer, as sendResult's do.
const sendPicture = (reply: FastifyReply, png: Buffer) => reply.type(RESULT_TYPES.png).send(png);

function sendMatrix(reply: FastifyReply, format: 'npy' | 'binary', result: CurvatureAnswer, head: CurvatureHead) {
  reply.type(RESULT_TYPES[format]);
  reply.headers(matrixHeaders({ ...head, loss: result.loss, meta: result.meta }));
  return reply.send(matrixBuffer(result.matrix!, head.size, format));
}
