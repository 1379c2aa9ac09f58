import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyPluginAsync } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { JOB_EXAMPLES, REQUEST_EXAMPLES } from '../schemas/examples.js';
import { MULTIPART_UPLOAD } from '../schemas/models.js';

export const API_DESCRIPTION = `Exact Hessian of a model's loss with respect to all its parameters flattened into one vector,
every block included (also the cross-layer ones), with a map from each row to its tensor and index.
Send a sequential dense model (Keras conventions: kernel [inputs][units]), a loss and a data batch.

Authentication is optional: a server started with API_KEYS wants every /v1 request to carry one of its keys
(\`Authorization: Bearer KEY\` or \`X-API-Key: KEY\`), and a job is visible only to the key that created it.
Without API_KEYS every route is open (local use).`;

const SECURITY_SCHEMES = {
  bearerAuth: { type: 'http' as const, scheme: 'bearer', description: 'Authorization: Bearer <one of API_KEYS>' },
  apiKeyHeader: { type: 'apiKey' as const, in: 'header', name: 'X-API-Key', description: 'X-API-Key: <one of API_KEYS>' },
};

type Operation = { security?: Record<string, string[]>[]; requestBody?: { content?: Record<string, { schema?: { $ref?: string }; examples?: unknown }> } };
type Document = { paths?: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, unknown> } };

/**
 * Security of each operation: /v1 needs a key when the server has keys (optional otherwise, `{}`);
 * /metrics and /openapi.json only with PROTECT_DOCS_AND_METRICS; /health and /ready never.
 */
function securityOf(path: string, keysRequired: boolean, protectOperations: boolean): Record<string, string[]>[] {
  const key: Record<string, string[]>[] = [{ bearerAuth: [] }, { apiKeyHeader: [] }];
  if (path.startsWith('/v1/')) return keysRequired ? key : [...key, {}];
  if (path === '/metrics' || path === '/openapi.json') return protectOperations ? (keysRequired ? key : [...key, {}]) : [];
  return [];
}

/** Keeps only the component schemas some operation refers to (directly or through another component). */
function dropUnusedSchemas(document: Document): void {
  const schemas = document.components?.schemas;
  if (!schemas) return;
  const used = new Set<string>();
  const visit = (node: unknown) => {
    for (const [, name] of JSON.stringify(node).matchAll(/"#\/components\/schemas\/([^"]+)"/g)) {
      if (used.has(name)) continue;
      used.add(name);
      visit(schemas[name]);
    }
  };
  visit(document.paths);
  for (const name of Object.keys(schemas)) if (!used.has(name)) delete schemas[name];
}

/**
 * The OpenAPI document (generated from the routes' zod schemas) and Swagger UI at /docs, with servers,
 * the security schemes, per-operation security and named request examples, one per loss family.
 */
export const docsPlugin = (options: { keysRequired: boolean; protectOperations: boolean }): FastifyPluginAsync =>
  fastifyPlugin(async (app) => {
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: { title: 'Hessian service', version: '0.1.0', description: API_DESCRIPTION },
        servers: [{ url: 'http://127.0.0.1:3000', description: 'A local server with the default HOST and PORT (npm start)' }],
        tags: [
          { name: 'hessian', description: 'Compute and answer in one request' },
          { name: 'curvature', description: 'Products, Gauss-Newton, Fisher, diagonal, eigenvalues, trace, spectral density' },
          { name: 'jobs', description: 'Queue, watch, stream, download and cancel' },
          { name: 'models', description: 'Upload a model once (as TF.js saves it, or as JSON) and name it by id in many requests' },
          { name: 'operations', description: 'Health, readiness, metrics, this document' },
        ],
        components: { securitySchemes: SECURITY_SCHEMES },
      },
      transform: jsonSchemaTransform,
      transformObject: (input) => {
        const document = jsonSchemaTransformObject(input) as Document;
        for (const [path, operations] of Object.entries(document.paths ?? {})) {
          for (const operation of Object.values(operations)) {
            operation.security = securityOf(path, options.keysRequired, options.protectOperations);
            const json = operation.requestBody?.content?.['application/json'];
            if (json?.schema?.$ref === '#/components/schemas/ModelRequestInput') json.examples = structuredClone(REQUEST_EXAMPLES);
            if (json?.schema?.$ref === '#/components/schemas/JobRequestInput') json.examples = structuredClone(JOB_EXAMPLES);
            // The multipart form of a model upload is read by its handler, not by a body schema.
            if (json?.schema?.$ref === '#/components/schemas/ModelUploadInput') (operation.requestBody!.content as Record<string, unknown>)['multipart/form-data'] = structuredClone(MULTIPART_UPLOAD);
          }
        }
        dropUnusedSchemas(document);
        return document as ReturnType<typeof jsonSchemaTransformObject>;
      },
    });
    await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  });
