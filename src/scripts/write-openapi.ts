/** `npm run openapi` writes openapi.yaml from the schemas; `--check` fails if the committed one differs. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OPENAPI_FILE, openapiYaml } from '../openapi.js';

const file = fileURLToPath(OPENAPI_FILE);
const yaml = await openapiYaml();
if (process.argv.includes('--check')) {
  const committed = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (committed !== yaml) {
    console.error('openapi.yaml is out of date: run `npm run openapi` and commit it');
    process.exit(1);
  }
  console.log('openapi.yaml is up to date');
} else {
  writeFileSync(file, yaml);
  console.log(`wrote ${file}`);
}
