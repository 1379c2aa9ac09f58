// Serves one file on 127.0.0.1 (a free port, printed on stdout) until killed: used by
// scripts/native-tf.sh and scripts/docker-smoke.sh to hand the libtensorflow bundle to tfjs-node's
// install script, which only downloads (TFJS_NODE_BASE_URI). Only GET /<file name> is answered.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename } from 'node:path';

const file = process.argv[2];
const size = statSync(file).size;
const server = createServer((request, response) => {
  if (request.method !== 'GET' || request.url !== `/${basename(file)}`) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'content-type': 'application/gzip', 'content-length': size });
  createReadStream(file).pipe(response);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
