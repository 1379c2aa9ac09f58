import fastifyAccepts from '@fastify/accepts';
import type { FastifyPluginAsync } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import type { Config } from '../config.js';
import { authPlugin, loadApiKeys } from './auth.js';
import { compressionPlugin } from './compression.js';
import { corsPlugin } from './cors.js';
import { docsPlugin } from './docs.js';
import { rateLimitPlugin } from './rate-limit.js';

/**
 * What a shared deployment needs around the routes, in the order their hooks must run: CORS (so that
 * even a 401 can be read by a page), API keys, the rate limit (counted per key), compression, content
 * negotiation, and the OpenAPI document. Registered before the routes.
 */
export const deploymentPlugins = (config: Config): FastifyPluginAsync =>
  fastifyPlugin(async (app) => {
    const keys = loadApiKeys(config);
    if (config.CORS_ORIGINS) await app.register(corsPlugin(config.CORS_ORIGINS));
    await app.register(authPlugin(config, keys));
    if (config.RATE_LIMIT_PER_MINUTE > 0) await app.register(rateLimitPlugin(config.RATE_LIMIT_PER_MINUTE));
    await app.register(compressionPlugin);
    await app.register(fastifyAccepts);
    await app.register(docsPlugin({ keysRequired: keys.length > 0, protectOperations: config.PROTECT_DOCS_AND_METRICS }));
  });
