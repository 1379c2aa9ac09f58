import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServiceContext } from './context.js';
import { errorResponses } from './errors.js';

export const opsRoutes =
  (ctx: ServiceContext): FastifyPluginAsync =>
  async (app) => {
    const api = app.withTypeProvider<ZodTypeProvider>();
    api.get(
      '/health',
      { schema: { operationId: 'getHealth', summary: 'Liveness', tags: ['operations'], response: { 200: z.object({ status: z.literal('ok') }) } } },
      async () => ({ status: 'ok' as const }),
    );

    const Ready = z.object({
      status: z.enum(['ready', 'starting', 'unavailable']),
      backend: z.string().nullable(),
      dtype: z.string().nullable(),
      workers: z.number().int().describe('Compute threads alive (a failed thread is replaced within moments)'),
      fallbacks: z.array(z.string()).describe('Why preferred backends were skipped'),
      tensorflowVersion: z.string().nullable().describe('The TensorFlow library version, on the tensorflow backend'),
      intraOpThreads: z.number().int().nullable().describe("TensorFlow's intra-op threads, on the tensorflow backend"),
    });
    api.get(
      '/ready',
      { schema: { operationId: 'getReady', summary: 'Readiness: the worker pool is up and its TF.js backend loaded', tags: ['operations'], response: { 200: Ready, 503: Ready } } },
      async (_request, reply) => {
        const info = ctx.backend();
        const failed = ctx.backendError();
        return reply.code(info ? 200 : 503).send({
          status: info ? 'ready' : failed ? 'unavailable' : 'starting',
          backend: info?.backend ?? null,
          dtype: info?.dtype ?? null,
          workers: ctx.pool.liveThreads,
          fallbacks: info?.fallbacks ?? (failed ? [failed] : []),
          tensorflowVersion: info?.tensorflowVersion ?? null,
          intraOpThreads: info?.intraOpThreads ?? null,
        });
      },
    );

    api.get(
      '/metrics',
      {
        schema: {
          operationId: 'getMetrics',
          summary: 'Prometheus metrics',
          tags: ['operations'],
          produces: ['text/plain'],
          response: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: z.string() } } }, ...errorResponses('unauthorized', 'forbidden') },
        },
      },
      async (_request, reply) => reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()),
    );

    api.get(
      '/openapi.json',
      {
        schema: {
          operationId: 'getOpenApi',
          summary: 'This OpenAPI document',
          tags: ['operations'],
          response: { 200: { description: 'The OpenAPI 3.1 document', content: { 'application/json': { schema: z.looseObject({}) } } }, ...errorResponses('unauthorized', 'forbidden') },
        },
      },
      async () => app.swagger() as unknown as Record<string, unknown>,
    );
  };
