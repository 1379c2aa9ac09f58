import { z } from 'zod';
import { LossSpec } from '../model.js';
import { BinaryTensorN } from '../tensor.js';
import { OurModel } from './ours.js';

/**
 * The model formats a request can carry, for the OpenAPI document. The importers (importRequest)
 * are what validates them, with one message per problem and its field path; these schemas describe.
 */

const NestedNumbers = z.array(z.unknown()).describe('Nested arrays of numbers');

export const TfjsModel = z
  .object({
    modelTopology: z.record(z.string(), z.unknown()).describe('As in model.json: {"class_name": "Sequential" | "Model", "config": {...}, ...}'),
    weightsManifest: z
      .array(z.object({ paths: z.array(z.string()), weights: z.array(z.object({ name: z.string(), shape: z.array(z.number().int()), dtype: z.string() }).loose()) }).loose())
      .describe('As in model.json; the weights are read from weightData in this order'),
    format: z.string().optional(),
    generatedBy: z.string().optional(),
    convertedBy: z.string().nullable().optional(),
    trainingConfig: z.record(z.string(), z.unknown()).optional().describe('Written by model.save(handler, {includeOptimizer: true}); its loss is used when the request names none'),
    weightData: z.string().describe("base64 of the weight files' bytes, concatenated in manifest order"),
  })
  .loose()
  .meta({ id: 'TfjsModel', description: "A TF.js model.json (or tensorflowjs_converter's) with one added key, weightData" });

export const KerasModel = z
  .object({
    class_name: z.string().describe('"Sequential" or "Functional" (Keras 2: "Model")'),
    config: z.record(z.string(), z.unknown()),
    module: z.string().optional(),
    registered_name: z.string().nullable().optional(),
    build_config: z.record(z.string(), z.unknown()).nullable().optional(),
    compile_config: z.record(z.string(), z.unknown()).nullable().optional().describe('Keras 3: its loss is used when the request names none'),
    keras_version: z.string().optional().describe('Keras 2 and TF.js topologies'),
    backend: z.string().optional(),
    weights: z
      .array(z.union([NestedNumbers, BinaryTensorN]))
      .optional()
      .describe('model.get_weights(): every weight (non-trainable too), layer by layer; omitted: drawn from a seed'),
  })
  .loose()
  .meta({ id: 'KerasModel', description: 'json.loads(model.to_json()) (Keras 3 or 2) with one added key, weights' });

export const ModelRef = z
  .object({ id: z.string().describe('What POST /v1/models answered') })
  .strict()
  .meta({ id: 'ModelRef', description: 'A model stored with POST /v1/models' });

export const ModelField = z
  .union([OurModel, TfjsModel, KerasModel, ModelRef])
  .describe('Our JSON, a TF.js model.json with weightData, a Keras to_json with weights, or {"id"} of a stored model');

export const RequestData = z
  .object({
    x: z.union([NestedNumbers, BinaryTensorN]).describe('[batch, ...input shape] as nested arrays or a binary float32 (int32 for token ids) tensor'),
    y: z
      .union([z.array(z.union([z.number(), z.array(z.number())])), BinaryTensorN])
      .describe('[batch][units] targets, or [batch] integer labels for sparseCategoricalCrossentropy; or a binary tensor'),
  })
  .strict();

export const RequestBody = z
  .object({
    model: ModelField,
    loss: LossSpec.optional().describe("Default: the compiled model's loss (TF.js trainingConfig, Keras compile_config)"),
    data: RequestData,
    wrt: z.array(z.string()).min(1).optional().describe('Parameter tensors to keep, e.g. ["dense_2/kernel"], in this order; default: all trainable'),
  })
  .strict()
  .meta({ id: 'ModelRequest' });
