import type { FastifyRequest } from 'fastify';
import type { ZodType } from 'zod';
import type { EngineRequest } from '../compute/spec.js';
import { importRequest, RequestBody } from '../schemas/import/index.js';
import { curvatureBody, CurvatureRequest, type CurvatureOptions } from '../schemas/curvature.js';
import { isCurvatureBody, JobRequest } from '../schemas/jobs.js';
import { namesStoredModel, type StoredModelRequest } from '../schemas/models.js';

/**
 * Request bodies that may be large, by the route schema that documents them: the schema, and how a
 * parsed body is validated and made compact (typed arrays) for the route, throwing a SpecError that
 * names every bad field. A large body for such a route is parsed and decoded on a body thread
 * (json-body.ts); any other body, and a small one, is parsed on the main thread, let through by the
 * validator (see decoderNameFor) and decoded by the route (takeDecodedBody). Both ways give the same
 * value and the same errors.
 */
export interface BodyDecoder<Compact> {
  schema: ZodType;
  decode: (body: unknown) => Compact;
}

export const BODY_DECODERS = {
  /** A request with a model in any format: the importers validate it; one naming a stored model waits for the route to resolve it. */
  hessianRequest: {
    schema: RequestBody,
    decode: decodeHessian,
  },
  /** A curvature request: its request fields as above, and the quantity's options. */
  curvatureRequest: { schema: CurvatureRequest, decode: decodeCurvature },
  /** A job: a curvature request when the body names a quantity, else a Hessian request. */
  jobRequest: {
    schema: JobRequest,
    decode: (body: unknown): { curvature: CurvatureBody } | { hessian: EngineRequest | StoredModelRequest } =>
      isCurvatureBody(body) ? { curvature: decodeCurvature(body) } : { hessian: decodeHessian(body) },
  },
} satisfies Record<string, BodyDecoder<unknown>>;

export type CurvatureBody = ({ engine: EngineRequest } | StoredModelRequest) & { options: CurvatureOptions };

function decodeHessian(body: unknown): EngineRequest | StoredModelRequest {
  return namesStoredModel(body) ? { storedModelBody: body } : importRequest(body);
}

function decodeCurvature(body: unknown): CurvatureBody {
  const { fields, options } = curvatureBody(body);
  return namesStoredModel(fields) ? { storedModelBody: fields, options } : { engine: importRequest(fields), options };
}

export type BodyDecoderName = keyof typeof BODY_DECODERS;
type Compacted<Name extends BodyDecoderName> = ReturnType<(typeof BODY_DECODERS)[Name]['decode']>;

/** The decoder of a route whose body schema is in the table. */
export function decoderNameFor(schema: unknown): BodyDecoderName | undefined {
  return (Object.keys(BODY_DECODERS) as BodyDecoderName[]).find((name) => BODY_DECODERS[name].schema === schema);
}

/**
 * A body the body thread already decoded (or found invalid, `error`): the route's validator lets it
 * through (or answers its error as its own validation error).
 */
export class DecodedBody {
  constructor(
    readonly decoder: BodyDecoderName,
    readonly value: unknown,
    readonly error?: Error,
  ) {}
}

/**
 * The route's body made compact, whichever way it came; the request lets go of it, so that a request
 * waiting in the queue holds only its tensors' bytes.
 */
export function takeDecodedBody<Name extends BodyDecoderName>(request: FastifyRequest, name: Name): Compacted<Name> {
  const body = request.body;
  request.body = undefined;
  if (body instanceof DecodedBody && body.decoder === name) return body.value as Compacted<Name>;
  return BODY_DECODERS[name].decode(body) as Compacted<Name>;
}
