/**
 * A typed client of the service, made from openapi.yaml by openapi-typescript (types, written to
 * test/generated/ by `npm run client:generate` or by test/client.generated.test.ts) and openapi-fetch.
 * Type-checked on its own (test/client/tsconfig.json) once the types exist.
 */
import createClient from 'openapi-fetch';
import type { paths } from '../generated/hessian-api.js';

type HessianBody = paths['/v1/hessian']['post']['requestBody']['content']['application/json'];

/** POST /v1/hessian through the generated types; answers the JSON result or throws the API's error. */
export async function computeHessian(baseUrl: string, body: HessianBody) {
  const client = createClient<paths>({ baseUrl });
  const { data, error, response } = await client.POST('/v1/hessian', { body, headers: { accept: 'application/json' } });
  if (error) throw new Error(`${response.status} ${error.error}: ${error.message}`);
  return data;
}
