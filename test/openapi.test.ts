import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { OPENAPI_FILE, openapiYaml } from '../src/openapi.js';

it('the committed openapi.yaml is the one the schemas generate (run `npm run openapi` after a change)', async () => {
  const generated = await openapiYaml();
  expect(readFileSync(OPENAPI_FILE, 'utf8')).toBe(generated);
  for (const path of ['/v1/hessian:', '/v1/jobs:', '/v1/jobs/{id}:', '/v1/jobs/{id}/result:', '/v1/jobs/{id}/stream:', '/health:', '/ready:', '/metrics:']) {
    expect(generated).toContain(`  ${path}`);
  }
});
