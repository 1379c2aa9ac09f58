import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsync } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { ApiError } from '../routes/errors.js';
import { isApiPath } from './auth.js';

/**
 * At most `perMinute` requests a minute to the /v1 routes per client (API key, or IP address without
 * keys), counted in memory; more get 429 rate_limited with Retry-After. Needs authPlugin before it.
 */
export const rateLimitPlugin = (perMinute: number): FastifyPluginAsync =>
  fastifyPlugin(async (app) => {
    await app.register(fastifyRateLimit, {
      max: perMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => request.client.id,
      // CORS preflights carry no key and are answered without work: they do not count.
      allowList: (request) => request.method === 'OPTIONS' || !isApiPath(request.url),
      errorResponseBuilder: (_request, context) =>
        new ApiError(
          'rate_limited',
          `more than ${context.max} requests in a minute from this client (RATE_LIMIT_PER_MINUTE); retry in ${Math.ceil(context.ttl / 1000)} seconds`,
        ),
    });
  });
