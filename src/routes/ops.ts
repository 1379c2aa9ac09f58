import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServiceContext } from './context.js';
import { errorResponses } from './errors.js';

/** How long /ready waits for its compute probe before it reports the service unavailable. */
const PROBE_TIMEOUT_MS = 5000;

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
      problem: z.string().nullable().describe('Why the service is unavailable: the compute probe failed, or it is shutting down'),
    });
    // Concurrent /ready calls share one probe.
    let probing: Promise<string | null> | null = null;
    const probe = () => {
      probing ??= ctx.smallLane.probe(PROBE_TIMEOUT_MS).finally(() => (probing = null));
      return probing;
    };
    api.get(
      '/ready',
      {
        schema: {
          operationId: 'getReady',
          summary: 'Readiness: the TF.js backend loaded and a compute thread computes (a 2x2 matMul probe, checked)',
          tags: ['operations'],
          response: { 200: Ready, 503: Ready },
        },
      },
      async (_request, reply) => {
        const info = ctx.backend();
        const failed = ctx.backendError();
        const problem = !info ? failed : !ctx.manager.acceptingWork ? 'the server is shutting down' : await probe();
        const ready = info !== null && problem === null;
        return reply.code(ready ? 200 : 503).send({
          status: ready ? 'ready' : info || failed ? 'unavailable' : 'starting',
          problem,
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
