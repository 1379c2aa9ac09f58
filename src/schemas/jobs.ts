import { z } from 'zod';
import { CurvatureRequest } from './curvature.js';
import { RequestBody } from './import/index.js';

/** POST /v1/jobs: a Hessian request, or (with "quantity") a curvature request, each as its own endpoint takes it. */
export const JobRequest = z
  .xor([RequestBody, CurvatureRequest])
  .meta({ id: 'JobRequest', description: 'The body of POST /v1/hessian, or with "quantity" the body of POST /v1/curvature' });

/** A job body asks for a curvature quantity when it names one (the Hessian's body has no such field). */
export const isCurvatureBody = (body: unknown): boolean => typeof body === 'object' && body !== null && !Array.isArray(body) && 'quantity' in body;
