import fastifyCors from '@fastify/cors';
import type { FastifyPluginAsync } from 'fastify';
import fastifyPlugin from 'fastify-plugin';

/**
 * Response headers a browser page may read: the matrix description of the binary forms, the request
 * id, and what a client needs to back off or follow a job.
 */
export const EXPOSED_HEADERS = [
  'x-hessian-size',
  'x-hessian-parameters',
  'x-hessian-loss',
  'x-hessian-backend',
  'x-hessian-dtype',
  'x-request-id',
  'location',
  'content-disposition',
  'retry-after',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
];

/** CORS for the origins in CORS_ORIGINS (comma-separated, or `*` for any), preflight included. */
export const corsPlugin = (origins: string): FastifyPluginAsync =>
  fastifyPlugin(async (app) => {
    const list = origins.split(',').map((origin) => origin.trim()).filter(Boolean);
    await app.register(fastifyCors, {
      origin: list.includes('*') ? '*' : list,
      methods: ['GET', 'POST', 'DELETE'],
      allowedHeaders: ['content-type', 'content-encoding', 'accept', 'authorization', 'x-api-key', 'x-request-id'],
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: 600,
    });
  });
