import { z } from 'zod';
import type { CurvatureQuery } from '../compute/quantities/index.js';
import { ParameterEntry, ResultMeta } from './api.js';
import { RequestBody } from './import/index.js';
import type { Report } from './model.js';
import { SpecError } from '../compute/errors.js';
import { specError } from '../compute/index.js';

/**
 * POST /v1/curvature: the Hessian request's fields (imported by importRequest) plus the quantity
 * asked for and its options (validated here). Options have no zod defaults, so that an option sent for
 * a quantity it does not apply to is an error instead of being silently ignored; CURVATURE_DEFAULTS
 * fills them in.
 */
export const QUANTITIES = ['hvp', 'ggn', 'fisher', 'diagonal', 'eigenvalues', 'trace', 'density'] as const;
export const MATRICES = ['hessian', 'ggn', 'fisher'] as const;

const OptionFields = z.object({
  quantity: z.enum(QUANTITIES).describe(
    'hvp: M v for each of `vectors`; ggn / fisher: the dense matrix (P <= MAX_PARAMETERS); diagonal; eigenvalues; trace; density (stochastic Lanczos quadrature)',
  ),
  matrix: z.enum(MATRICES).optional().describe('The matrix M of hvp, diagonal, eigenvalues, trace and density (default hessian)'),
  vectors: z
    .union([z.array(z.array(z.number())).min(1).max(1024), z.boolean()])
    .optional()
    .describe('hvp: the directions, each P numbers in the flat parameter order. eigenvalues: whether to return eigenvectors (default false)'),
  k: z.number().int().min(1).max(64).optional().describe('eigenvalues: how many (default 1)'),
  which: z.enum(['largest', 'smallest', 'largestMagnitude']).optional().describe('eigenvalues: which end of the spectrum (default largest)'),
  tolerance: z
    .number()
    .positive()
    .max(1)
    .optional()
    .describe('eigenvalues: stop when every residual ||M x - λ x|| is below tolerance · max|λ| (default 1e-4)'),
  maxIterations: z.number().int().min(1).max(1000).optional().describe('eigenvalues: most block Lanczos steps, restarts included (default: 5 fillings of the basis, which holds at most 200 vectors and fewer when P is large)'),
  method: z.enum(['exact', 'hutchinson']).optional().describe('trace: the sum of the exact diagonal, or Hutchinson with Rademacher probes (default exact)'),
  samples: z.number().int().min(2).max(100_000).optional().describe('trace, hutchinson: probes (default 100)'),
  runs: z.number().int().min(1).max(256).optional().describe('density: independent Lanczos runs (default 10)'),
  steps: z.number().int().min(1).max(1000).optional().describe('density: Lanczos steps per run (default 50)'),
  gridPoints: z.number().int().min(10).max(100_000).optional().describe('density: points of the returned grid (default 1000)'),
  seed: z.number().int().min(0).max(2 ** 31).optional().describe('Seed of the random start / probe vectors (default 0)'),
});

type OptionFields = z.infer<typeof OptionFields>;
type Option = Exclude<keyof OptionFields, 'quantity'>;

/** Which options each quantity takes. */
const OPTIONS: Record<(typeof QUANTITIES)[number], readonly Option[]> = {
  hvp: ['matrix', 'vectors'],
  ggn: [],
  fisher: [],
  diagonal: ['matrix'],
  eigenvalues: ['matrix', 'k', 'which', 'vectors', 'tolerance', 'maxIterations', 'seed'],
  trace: ['matrix', 'method', 'samples', 'seed'],
  density: ['matrix', 'runs', 'steps', 'gridPoints', 'seed'],
};

export const CURVATURE_DEFAULTS = {
  matrix: 'hessian',
  k: 1,
  which: 'largest',
  tolerance: 1e-4,
  method: 'exact',
  samples: 100,
  runs: 10,
  steps: 50,
  gridPoints: 1000,
  seed: 0,
} as const;

/** The quantity and its options: every field of a curvature request but the model's request fields. */
export const CurvatureOptions = OptionFields.strict().check((payload) => {
  if (payload.issues.length) return;
  checkOptions(payload.value, (path, message) => payload.issues.push({ code: 'custom', path, message, input: payload.value }));
});

/** The whole body, for the OpenAPI document (the route imports the request fields and validates CurvatureOptions). */
export const CurvatureRequest = RequestBody.extend(OptionFields.shape).strict().meta({ id: 'CurvatureRequest' });

/** The fields of a curvature request that importRequest takes. */
export const REQUEST_FIELDS = ['model', 'loss', 'data', 'wrt'] as const;

function checkOptions(request: CurvatureOptions, issue: Report): void {
  const { quantity } = request;
  const allowed = OPTIONS[quantity];
  for (const option of Object.keys(OPTIONS).flatMap((q) => OPTIONS[q as keyof typeof OPTIONS])) {
    if (request[option] !== undefined && !allowed.includes(option)) {
      const takers = Object.entries(OPTIONS).filter(([, o]) => o.includes(option)).map(([q]) => q);
      issue([option], `${option} does not apply to quantity '${quantity}' (it is an option of ${takers.join(', ')})`);
    }
  }
  const { vectors } = request;
  if (quantity === 'hvp') {
    if (!Array.isArray(vectors)) issue(['vectors'], 'vectors is required for quantity hvp: a list of directions, each with P numbers');
  } else if (quantity === 'eigenvalues' && vectors !== undefined && typeof vectors !== 'boolean') {
    issue(['vectors'], 'vectors must be true or false for quantity eigenvalues (whether to return eigenvectors)');
  }
}

export type CurvatureOptions = OptionFields;

/** 400 (a SpecError's issue) when an hvp direction's length is not P, which is known once the model is imported. */
export function vectorsIssue(options: CurvatureOptions, size: number, selected: boolean): { path: string; message: string } | null {
  if (options.quantity !== 'hvp' || !Array.isArray(options.vectors)) return null;
  const bad = options.vectors.findIndex((v) => v.length !== size);
  if (bad < 0) return null;
  return { path: `vectors[${bad}]`, message: `vectors[${bad}] has ${options.vectors[bad].length} entries but P is ${size} (the ${selected ? 'wrt' : 'model'} parameters)` };
}

const numbers = z.array(z.number());

export const CurvatureJson = z
  .object({
    parameters: z.array(ParameterEntry),
    size: z.number().int().describe('P'),
    quantity: z.enum(QUANTITIES),
    matrix: z.enum(MATRICES).optional(),
    loss: z.number(),
    products: z.array(numbers).optional().describe('hvp: M v for each vector'),
    ggn: z.array(numbers).optional().describe('ggn: P rows of P numbers'),
    fisher: z.array(numbers).optional().describe('fisher: P rows of P numbers'),
    diagonal: numbers.optional(),
    eigenvalues: numbers.optional().describe('In the order `which` asks for'),
    eigenvectors: z.array(numbers).optional().describe('Unit vectors, one per eigenvalue, when vectors: true'),
    residuals: numbers.optional().describe('||M x - λ x|| of each pair'),
    iterations: z.number().int().optional().describe('Block Lanczos steps'),
    converged: z.boolean().optional().describe('Whether every residual met the tolerance'),
    trace: z.number().optional(),
    stdError: z.number().optional().describe('Standard error of the Hutchinson estimate (0 for exact)'),
    samples: z.number().int().nullable().optional(),
    nodes: z.array(numbers).optional().describe('density: per run, the quadrature nodes (Ritz values)'),
    weights: z.array(numbers).optional().describe('density: per run, the quadrature weights (sum 1)'),
    grid: numbers.optional(),
    density: numbers.optional().describe('Gaussian-smoothed spectral density on the grid (integrates to 1)'),
    sigma: z.number().optional().describe('Width of the Gaussian per node'),
    meta: ResultMeta,
  })
  .describe('The fields of the quantity asked for, with the parameter map');

/** The engine's query from a validated request, defaults filled in. */
export function curvatureQuery(request: CurvatureOptions): CurvatureQuery {
  const o = { ...CURVATURE_DEFAULTS, ...stripUndefined(request) };
  switch (request.quantity) {
    case 'hvp':
      return { quantity: 'hvp', matrix: o.matrix, vectors: request.vectors as number[][] };
    case 'ggn':
    case 'fisher':
      return { quantity: request.quantity };
    case 'diagonal':
      return { quantity: 'diagonal', matrix: o.matrix };
    case 'eigenvalues':
      return { quantity: 'eigenvalues', matrix: o.matrix, k: o.k, which: o.which, vectors: request.vectors === true, tolerance: o.tolerance, maxIterations: request.maxIterations, seed: o.seed };
    case 'trace':
      return { quantity: 'trace', matrix: o.matrix, method: o.method, samples: o.samples, seed: o.seed };
    case 'density':
      return { quantity: 'density', matrix: o.matrix, runs: o.runs, steps: o.steps, gridPoints: o.gridPoints, seed: o.seed };
  }
}

const stripUndefined = <T extends object>(value: T): Partial<T> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;

/**
 * The body split into the request fields (for importRequest) and the quantity's options, validated
 * (a SpecError naming each bad option). A body that is not an object is left to importRequest to refuse.
 */
export function curvatureBody(body: unknown): { fields: unknown; options: CurvatureOptions } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SpecError([{ path: '', message: 'the request body must be an object {"model", "loss", "data", "wrt", "quantity", ...options}' }]);
  }
  const isField = ([key]: [string, unknown]) => (REQUEST_FIELDS as readonly string[]).includes(key);
  const entries = Object.entries(body);
  const parsed = CurvatureOptions.safeParse(Object.fromEntries(entries.filter((entry) => !isField(entry))));
  if (!parsed.success) throw specError(parsed.error);
  return { fields: Object.fromEntries(entries.filter(isField)), options: parsed.data };
}

