import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import type { Config } from '../config.js';
import type { Submitter } from '../jobs/manager.js';
import { ApiError } from '../routes/errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling: the API key's digest with API_KEYS, else the IP address. */
    client: Submitter;
  }
}

/** The keys API_KEYS and API_KEYS_FILE (one a line; blank lines and # comments skipped) give. */
export function loadApiKeys({ API_KEYS, API_KEYS_FILE }: Pick<Config, 'API_KEYS' | 'API_KEYS_FILE'>): string[] {
  const fromFile = API_KEYS_FILE ? readFileSync(API_KEYS_FILE, 'utf8').split('\n') : [];
  const fromEnv = API_KEYS.split(',');
  return [...fromEnv, ...fromFile].map((key) => key.trim()).filter((key) => key && !key.startsWith('#'));
}

/** Keys are compared and remembered by digest: a job record never holds the key itself. */
const digest = (key: string) => createHash('sha256').update(key).digest('hex');

/** The key a request carries: `Authorization: Bearer KEY`, or `X-API-Key: KEY`. */
function presentedKey(request: FastifyRequest): string | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  if (bearer) return bearer[1];
  const header = request.headers['x-api-key'];
  return (Array.isArray(header) ? header[0] : header)?.trim() || undefined;
}

/** The API proper: what keys, the rate limit and the per-client share apply to. */
export const isApiPath = (path: string) => path.startsWith('/v1/');

/** Paths that need a key when keys are on; /health and /ready never do. */
const isProtected = (path: string, protectOperations: boolean) =>
  isApiPath(path) || (protectOperations && (path === '/metrics' || path === '/openapi.json' || path === '/docs' || path.startsWith('/docs/')));

/**
 * Identifies every request's client. Without API_KEYS the client is its IP address and every route
 * is open (local use). With keys, /v1 routes (and, with PROTECT_DOCS_AND_METRICS, /metrics and the
 * documentation) answer 401 without a key and 403 for an unknown one; jobs belong to their key.
 */
export const authPlugin = (config: Config, keys: string[]): FastifyPluginAsync =>
  fastifyPlugin(async (app) => {
    const known = new Set(keys.map(digest));
    app.decorateRequest('client', null as unknown as Submitter);
    app.addHook('onRequest', async (request) => {
      request.client = { id: `ip:${request.ip}` };
      if (!known.size || request.method === 'OPTIONS') return;
      // The matched route as well as the raw path: no spelling of a URL reaches a route unprotected.
      const paths = [request.url.split('?')[0], request.routeOptions.url ?? ''];
      if (!paths.some((path) => isProtected(path, config.PROTECT_DOCS_AND_METRICS))) return;
      const key = presentedKey(request);
      if (!key) throw new ApiError('unauthorized', 'this server needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>');
      const owner = digest(key);
      if (!known.has(owner)) throw new ApiError('forbidden', 'the API key sent is not valid on this server');
      request.client = { id: `key:${owner}`, owner };
    });
  });
