import { z } from 'zod';
import { SpecError, specError } from '../compute/index.js';
import type { ImportedModel as StorableModel } from '../jobs/models.js';
import { ParameterEntry } from './api.js';
import { importModel, parameterTensors, type ImportedModel } from './import/index.js';
import { describeValue } from './model.js';

/** Shapes of the stored-model routes (POST, GET, DELETE /v1/models); the OpenAPI document is generated from these. */

export const ModelId = z.object({ id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/) });

/**
 * A request body whose model names a stored model ({"model": {"id": ...}}), kept as it came: it is
 * imported once the route has resolved the id (the store is the main thread's; a body thread cannot).
 */
export interface StoredModelRequest {
  storedModelBody: { model: object };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Whether a request body's model is a reference {"id": ...} to a stored model. */
export const namesStoredModel = (body: unknown): body is { model: object } => isObject(body) && isObject(body.model) && 'id' in body.model;

const UPLOADED_MODEL = z
  .record(z.string(), z.unknown())
  .describe(
    'Any model form /v1/hessian takes: our own JSON ({"inputShape", "layers"}), a TF.js model.json object with "weightData" (base64 of the weight files), or a Keras to_json() object with "weights"',
  );

/** The JSON form of an upload: {"model": <model>}, as in /v1/hessian, or the model object itself. */
export const ModelUpload = z
  .union([z.object({ model: UPLOADED_MODEL }).strict(), UPLOADED_MODEL])
  .describe('{"model": <model>} (as in /v1/hessian), or the model object itself')
  .meta({ id: 'ModelUpload' });

/** An import as the store keeps it, with what the upload answers: the parameter map and the input and output shapes. */
export function storableModel({ model, loss, lossProblem, shapes }: ImportedModel): StorableModel {
  const parameters = parameterTensors(model, shapes);
  return {
    model,
    ...(loss ? { loss } : {}),
    ...(lossProblem ? { lossProblem } : {}),
    summary: { parameters, size: parameters.reduce((n, p) => n + p.size, 0), inputShape: model.input.shape, outputShape: shapes.get(model.output)! },
  };
}

/**
 * The JSON form of an upload validated and imported, ready to store (the graph's weights as typed
 * arrays); throws a SpecError naming the field. On a body thread for a large body, else in the route.
 */
export function importUpload(body: unknown): StorableModel {
  const parsed = ModelUpload.safeParse(body);
  if (!parsed.success) throw specError(parsed.error);
  const [model, path] = 'model' in parsed.data ? [parsed.data.model, 'model'] : [parsed.data, ''];
  if (namesStoredModel({ model })) {
    const message = `${path || 'the body'} is a reference to a stored model (${describeValue(model)} with an id); upload the model itself`;
    throw new SpecError([{ path: path ? `${path}.id` : 'id', message }]);
  }
  return storableModel(importModel(model, path));
}

/** The multipart form, as TF.js's model.save(tf.io.http(url)) sends it (documented beside the JSON body). */
export const MULTIPART_UPLOAD = {
  schema: {
    type: 'object',
    required: ['model.json'],
    properties: {
      'model.json': { type: 'string', format: 'binary', description: 'The model.json: modelTopology and weightsManifest (paths "./model.weights.bin")' },
      'model.weights.bin': { type: 'string', format: 'binary', description: 'The weights, as the manifest lays them out (application/octet-stream)' },
    },
    additionalProperties: { type: 'string', format: 'binary', description: 'More weight files, one part per path of the manifest (named as the path, without "./")' },
  },
};

export const StoredModel = z
  .object({
    id: z.string().describe('Send {"model": {"id": id}} in /v1/hessian, /v1/jobs or /v1/curvature'),
    parameters: z.array(ParameterEntry).describe("The model's trainable weights in the order of the matrix"),
    size: z.number().int().describe('P, the number of parameters'),
    inputShape: z.array(z.number().int()).describe('One example, without the batch'),
    outputShape: z.array(z.number().int()).describe('The output of one example, without the batch'),
    loss: z
      .object({ type: z.string(), fromLogits: z.boolean().optional(), delta: z.number().optional() })
      .optional()
      .describe("The loss of the model's training config (a compiled model), used when a request names none"),
    createdAt: z.string(),
    expiresAt: z.string().describe('When the model is deleted (RESULT_TTL_SECONDS after its upload)'),
    links: z.object({ self: z.string() }),
  })
  .meta({ id: 'StoredModel' });

export type StoredModel = z.infer<typeof StoredModel>;
