import { z } from 'zod';
import { EXAMPLE_RESPONSE } from './examples.js';

/** Shapes of what the API answers; the OpenAPI document is generated from these. */

export const ParameterEntry = z
  .object({
    name: z.string().describe('"<layer>/kernel" or "<layer>/bias"'),
    shape: z.array(z.number().int()),
    offset: z.number().int().describe('First row/column of this tensor in the matrix'),
    size: z.number().int(),
  })
  .describe('Rows offset .. offset+size-1 of the matrix belong to this tensor, flattened row-major');

export const ResultMeta = z.object({
  backend: z
    .enum(['tensorflow', 'wasm', 'cpu', 'js'])
    .describe('Where the matrix was computed: a TF.js backend on a worker thread, or `js`: plain JavaScript in float64 on the HTTP thread, for tiny synchronous requests (INLINE_MAX_FLOPS)'),
  dtype: z.literal('float32'),
  elapsedMs: z.number(),
  method: z
    .enum(['structured', 'rOperator', 'graph'])
    .optional()
    .describe(
      'How the matrix was computed: for a stack of dense layers, structured assembly from per-example factors or Hessian-vector products by the R-operator; for any other model, the graph engine\'s R-operator (absent in results from before this field)',
    ),
});

export const HessianJson = z.object({
  parameters: z.array(ParameterEntry),
  size: z.number().int().describe('P, the number of rows and columns'),
  loss: z.number(),
  gradient: z.array(z.number()).describe('dL/dθ, length P'),
  hessian: z.array(z.array(z.number())).describe('P rows of P numbers, symmetric, every block'),
  meta: ResultMeta,
}).meta({ id: 'HessianResult', examples: [EXAMPLE_RESPONSE] });

export const FieldIssue = z.object({ path: z.string(), message: z.string() });

export const ErrorBody = z.object({
  error: z.string().describe('A short machine-readable code, e.g. invalid_request'),
  message: z.string(),
  details: z.array(FieldIssue).optional().describe('One entry per bad field'),
});

export const JobStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);

export const Job = z.object({
  id: z.string(),
  status: JobStatus,
  quantity: z.string().optional().describe('A curvature job: the quantity it computes (absent for a Hessian job)'),
  matrix: z.string().optional().describe("A curvature job: the matrix of its quantity, unless it is 'ggn' or 'fisher'"),
  progress: z
    .number()
    .min(0)
    .max(1)
    .describe(
      'A Hessian job: rows done / P. A curvature job: operator products done / the most it runs (Lanczos steps within the iteration budget, Hutchinson samples, quadrature steps of all runs, ggn / fisher columns, hvp vectors); it jumps to 1 when it ends earlier (eigenvalues that converged), and stays 0 until done for the exact diagonal and trace, made without products',
    ),
  size: z.number().int().describe('P'),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  expiresAt: z.string().nullable().describe('When a finished result is deleted (RESULT_TTL_SECONDS after it finished)'),
  error: z.object({ kind: z.string(), message: z.string() }).optional(),
  links: z.object({ self: z.string(), result: z.string(), stream: z.string() }),
}).meta({ id: 'Job' });

export const JobId = z.object({ id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/) });

export type JobStatus = z.infer<typeof JobStatus>;
export type Job = z.infer<typeof Job>;
export type ParameterEntry = z.infer<typeof ParameterEntry>;
export type ResultMeta = z.infer<typeof ResultMeta>;
export type ErrorBody = z.infer<typeof ErrorBody>;
