import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';

/** The OpenAPI document as YAML, generated from the routes' zod schemas (what openapi.yaml must equal). */
export async function openapiYaml(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hessian-openapi-'));
  const app = await buildApp(loadConfig({}, { WORKERS: 1, RESULTS_DIR: dir, LOG_LEVEL: 'silent' }));
  try {
    await app.ready();
    return app.swagger({ yaml: true });
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const OPENAPI_FILE = new URL('../openapi.yaml', import.meta.url);
