import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { specError } from '../compute/index.js';
import type { Submitter } from '../jobs/manager.js';
import type { ModelRecord } from '../jobs/models.js';
import { takeDecodedBody } from '../plugins/body-decoders.js';
import { ModelRef, tfjsArtifactsModel, type StoredModel as ResolvedModel } from '../schemas/import/index.js';
import { ModelId, ModelUpload, StoredModel, storableModel } from '../schemas/models.js';
import type { ServiceContext } from './context.js';
import { ApiError, errorResponses, V1_ERRORS, type ErrorCode } from './errors.js';
import { checkModelSize } from './hessian.js';

/** The parts of a TF.js upload besides its weight files. */
const MODEL_JSON_PART = 'model.json';
/** Parts one upload may have: model.json and its weight files (TF.js's http handler sends one; the converter shards). */
const MAX_PARTS = 64;

/** The public view of a stored model. */
function describe(record: ModelRecord): StoredModel {
  const { id, parameters, size, inputShape, outputShape, loss, createdAt, expiresAt } = record;
  return { id, parameters, size, inputShape, outputShape, ...(loss ? { loss } : {}), createdAt, expiresAt, links: { self: `/v1/models/${id}` } };
}

const notFound = (id: string) => new ApiError('not_found', `no model ${id} (never uploaded, deleted, expired, or uploaded with another API key)`);

/**
 * A request's `model` when it names a stored model ({"id": ...}): that model's graph and training-config
 * loss, read from disk (nothing is imported again); null for any other model form. 404 for an id the
 * caller cannot see (unknown, deleted, expired, another key's); 400 for an id object with other fields.
 */
export async function resolveModel(ctx: ServiceContext, model: unknown, client: Submitter): Promise<ResolvedModel | null> {
  if (typeof model !== 'object' || model === null || !('id' in model)) return null;
  const reference = ModelRef.safeParse(model);
  if (!reference.success) throw specError(prefixIssues(reference.error, 'model'));
  const record = ctx.models.get(reference.data.id, client.owner);
  const graph = record && (await ctx.models.load(record));
  if (!record || !graph) throw notFound(reference.data.id);
  const { loss, lossProblem } = record;
  return { model: graph, ...(loss ? { loss } : {}), ...(lossProblem ? { lossProblem } : {}) };
}

/** A zod failure of a field at `path` ("model") of the body, with its issues placed there. */
export const prefixIssues = (error: z.ZodError, path: string): z.ZodError =>
  ({ issues: error.issues.map((issue) => ({ ...issue, path: path ? [path, ...issue.path] : issue.path })) }) as z.ZodError;

/**
 * The parts of a multipart upload, read whole: each at most MAX_BODY_BYTES and all together too (413
 * past it). A part named twice, or a body that is not well-formed multipart, is a 400.
 */
async function readParts(request: FastifyRequest, maxBytes: number): Promise<Map<string, Buffer | object>> {
  const parts = new Map<string, Buffer | object>();
  let total = 0;
  const count = (bytes: number) => {
    total += bytes;
    if (total > maxBytes) throw new ApiError('payload_too_large', `the upload is larger than MAX_BODY_BYTES (${maxBytes} bytes)`);
  };
  try {
    for await (const part of request.parts()) {
      if (parts.has(part.fieldname)) throw new ApiError('invalid_request', `the upload has two parts named '${part.fieldname}'; send each once`);
      if (part.type === 'file') {
        const chunks: Buffer[] = [];
        for await (const chunk of part.file as AsyncIterable<Buffer>) {
          count(chunk.length);
          chunks.push(chunk);
        }
        parts.set(part.fieldname, Buffer.concat(chunks));
      } else {
        // A text field (curl -F 'model.json=<file'); one sent as application/json arrives parsed.
        if (part.valueTruncated) count(maxBytes + 1);
        const value = typeof part.value === 'string' ? Buffer.from(part.value) : (part.value as object);
        count(Buffer.isBuffer(value) ? value.length : 0);
        parts.set(part.fieldname, value);
      }
    }
  } catch (error) {
    throw multipartError(error, maxBytes);
  }
  return parts;
}

/** What @fastify/multipart and busboy throw, as the API's errors. */
function multipartError(error: unknown, maxBytes: number): ApiError {
  if (error instanceof ApiError) return error;
  const { code, message } = error as { code?: string; message: string };
  switch (code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ApiError('payload_too_large', `a part of the upload is larger than MAX_BODY_BYTES (${maxBytes} bytes)`);
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ApiError('invalid_request', `the upload has more than ${MAX_PARTS} parts; send ${MODEL_JSON_PART} and the weight files its manifest lists`);
    case 'FST_INVALID_JSON_FIELD_ERROR':
      return new ApiError('invalid_json', `the part ${MODEL_JSON_PART} is not valid JSON`);
  }
  return new ApiError('invalid_multipart', `the multipart/form-data body cannot be read: ${message}`);
}

/** The weight file names a TF.js manifest lists, in its order ("./model.weights.bin" -> "model.weights.bin"). */
function manifestPaths(modelJson: unknown): string[] {
  const manifest = (modelJson as { weightsManifest?: unknown })?.weightsManifest;
  if (!Array.isArray(manifest)) return [];
  return manifest.flatMap((group) => (Array.isArray(group?.paths) ? group.paths : [])).map((path: unknown) => String(path).replace(/^(\.\/)+/, ''));
}

/**
 * A TF.js upload as `model.save(tf.io.http(url))` sends it: the model.json part, and the weight files
 * its manifest lists (one, "model.weights.bin"), joined in manifest order for the TF.js importer.
 */
function artifactsOf(parts: Map<string, Buffer | object>): { modelJson: unknown; weights: Uint8Array } {
  const received = () => (parts.size ? [...parts.keys()].map((name) => `'${name}'`).join(', ') : 'none');
  const raw = parts.get(MODEL_JSON_PART);
  if (raw === undefined) {
    throw new ApiError(
      'invalid_request',
      `the upload has no part named '${MODEL_JSON_PART}' (parts received: ${received()}); send the model.json and its weights as TF.js's model.save(tf.io.http(url)) does`,
    );
  }
  let modelJson: unknown = raw;
  if (Buffer.isBuffer(raw)) {
    try {
      modelJson = JSON.parse(raw.toString('utf8'));
    } catch (error) {
      throw new ApiError('invalid_json', `the part ${MODEL_JSON_PART} is not valid JSON: ${(error as Error).message}`);
    }
  }
  const paths = manifestPaths(modelJson);
  const files = paths.map((path) => {
    const file = parts.get(path);
    if (!Buffer.isBuffer(file)) {
      throw new ApiError('invalid_request', `${MODEL_JSON_PART}'s weightsManifest lists the weight file '${path}' but the upload has no such part (parts received: ${received()})`);
    }
    return file;
  });
  const extra = [...parts.keys()].filter((name) => name !== MODEL_JSON_PART && !paths.includes(name));
  if (extra.length) {
    const listed = paths.length ? `the weight files it lists (${paths.map((p) => `'${p}'`).join(', ')})` : 'no weight files (its weightsManifest lists none)';
    throw new ApiError('invalid_request', `the upload has parts ${extra.map((name) => `'${name}'`).join(', ')} that ${MODEL_JSON_PART} does not list; accepted: '${MODEL_JSON_PART}' and ${listed}`);
  }
  const weights = Buffer.concat(files);
  return { modelJson, weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) };
}

/** What POST /v1/models can answer besides V1_ERRORS. */
const UPLOAD_ERRORS: ErrorCode[] = [
  'invalid_json', 'invalid_request', 'invalid_multipart', 'invalid_compressed_body', 'bad_request', 'payload_too_large', 'model_too_large',
  'unsupported_media_type', 'unsupported_content_encoding', 'storage_error', 'insufficient_storage',
];

export const modelRoutes =
  (ctx: ServiceContext): FastifyPluginAsync =>
  async (app) => {
    // Encapsulated here: only /v1/models takes multipart bodies (the other routes still answer 415).
    await app.register(fastifyMultipart, {
      limits: { fileSize: ctx.config.MAX_BODY_BYTES, fieldSize: ctx.config.MAX_BODY_BYTES, parts: MAX_PARTS, files: MAX_PARTS, fields: MAX_PARTS },
    });
    const api = app.withTypeProvider<ZodTypeProvider>();
    const find = (id: string, client: Submitter) => ctx.models.get(id, client.owner) ?? (() => { throw notFound(id); })();
    const MODEL_ERRORS: ErrorCode[] = [...V1_ERRORS, 'invalid_request', 'not_found'];

    api.post(
      '/v1/models',
      {
        schema: {
          operationId: 'uploadModel',
          summary: 'Upload a model once, to use it in many requests',
          description:
            'Takes what TF.js\'s `model.save(tf.io.http(url))` sends (multipart/form-data: model.json and model.weights.bin), or JSON: {"model": <any model form>} or the model itself. Answers with the id to send as {"model": {"id": id}} in /v1/hessian, /v1/jobs and /v1/curvature, and the parameter map. The model is kept RESULT_TTL_SECONDS and counts against MAX_RESULTS_BYTES.',
          tags: ['models'],
          body: ModelUpload,
          response: { 201: StoredModel, ...errorResponses(...UPLOAD_ERRORS, ...V1_ERRORS) },
        },
        config: { bodyTypes: 'application/json, or multipart/form-data as TF.js\'s tf.io.http sends it' },
      },
      async (request, reply) => {
        // A multipart body is read here (fastify shows its absent body as null); the JSON form was
        // validated and imported by its decoder (on a body thread when large; see body-decoders.ts).
        let imported;
        if (request.isMultipart()) {
          const { modelJson, weights } = artifactsOf(await readParts(request, ctx.config.MAX_BODY_BYTES));
          imported = storableModel(tfjsArtifactsModel(modelJson, weights));
        } else {
          imported = takeDecodedBody(request, 'modelUpload');
        }
        checkModelSize(imported.summary.size, ctx.config);
        const record = await ctx.models.put(imported, request.client.owner);
        return reply.code(201).header('location', `/v1/models/${record.id}`).send(describe(record));
      },
    );

    api.get(
      '/v1/models/:id',
      { schema: { operationId: 'getModel', summary: 'A stored model: its parameter map, shapes and expiry', tags: ['models'], params: ModelId, response: { 200: StoredModel, ...errorResponses(...MODEL_ERRORS) } } },
      async (request) => describe(find(request.params.id, request.client)),
    );

    api.delete(
      '/v1/models/:id',
      {
        schema: {
          operationId: 'deleteModel',
          summary: 'Delete a stored model',
          description: 'Requests already admitted with it go on; later ones naming it get 404.',
          tags: ['models'],
          params: ModelId,
          response: { 204: z.null().describe('Deleted'), ...errorResponses(...MODEL_ERRORS, 'storage_error') },
        },
      },
      async (request, reply) => {
        const record = find(request.params.id, request.client);
        await ctx.models.remove(record.id);
        return reply.code(204).send(null);
      },
    );
  };
