import type { FastifyRequest } from 'fastify';
import type { ZodType } from 'zod';
import { engineRequest } from '../compute/index.js';
import { compactRequest, HessianRequest, type ValidatedRequest } from '../schemas/model.js';

/**
 * Request bodies that may be large, by the route schema that validates them: the schema, and how a
 * validated body is made compact (typed arrays) for the route. A large body for such a route is parsed,
 * validated and compacted on a body thread (json-body.ts); any other body, and a small one, is
 * parsed on the main thread, validated by the route's schema and compacted by the route
 * (takeDecodedBody). Both ways give the same value and the same errors.
 */
export interface BodyDecoder<Compact> {
  schema: ZodType;
  compact: (validated: never) => Compact;
}

export const BODY_DECODERS = {
  hessianRequest: { schema: HessianRequest, compact: (validated: ValidatedRequest) => engineRequest(compactRequest(validated)) },
} satisfies Record<string, BodyDecoder<unknown>>;

export type BodyDecoderName = keyof typeof BODY_DECODERS;
type Compacted<Name extends BodyDecoderName> = ReturnType<(typeof BODY_DECODERS)[Name]['compact']>;

/** The decoder of a route whose body schema is in the table. */
export function decoderNameFor(schema: unknown): BodyDecoderName | undefined {
  return (Object.keys(BODY_DECODERS) as BodyDecoderName[]).find((name) => BODY_DECODERS[name].schema === schema);
}

/**
 * A body the body thread already validated (or found invalid, `error`) and made compact: the route's
 * validator lets it through (or answers its error as its own validation error).
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
  return (BODY_DECODERS[name].compact as (validated: unknown) => Compacted<Name>)(body);
}
