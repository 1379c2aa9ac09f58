import { buildApp } from './app.js';
import { loadConfig } from './config.js';

const config = loadConfig();
const app = await buildApp(config);
await app.listen({ port: config.PORT, host: config.HOST });
app.log.info(`Swagger UI at http://${config.HOST}:${config.PORT}/docs`);

const CLOSE_WAIT_MS = 5000;
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal, graceSeconds: config.SHUTDOWN_GRACE_SECONDS }, 'shutting down: no new jobs, the running job may finish within the grace period, results kept');
    app
      .drain()
      // Every job is settled and recorded by now; a connection that will not end (a client reading a
      // result very slowly) may delay the exit by at most CLOSE_WAIT_MS.
      .then(() => Promise.race([app.close(), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]))
      .then(
        () => {
          app.log.info('shut down');
          process.exit(0);
        },
        (error) => {
          app.log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  });
}
