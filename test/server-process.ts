/**
 * The real server (dist/server.js) as a child process on a free loopback port, for tests that need a
 * process: signals, exit codes, restarts. Every wait is bounded; children still running after the
 * file's tests are killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { sleep } from './api-helpers.js';

const server = fileURLToPath(new URL('../dist/server.js', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  base: string;
  /** Everything the process has written to stdout so far (JSON log lines). */
  output: () => string;
}

/** Returns a launcher whose children are killed after this file's tests. */
export function serverProcesses(): (dir: string, env?: Record<string, string>) => Promise<ServerProcess> {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  /** Starts dist/server.js on `dir`; resolves with its base URL once it listens and is ready. */
  return async (dir, env = {}) => {
    const child = spawn(process.execPath, [server], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', RESULTS_DIR: dir, WORKERS: '2', LOG_LEVEL: 'info', HESSIAN_BACKEND: process.env.HESSIAN_BACKEND ?? 'auto', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not listen in time: ${output}`)), 60_000);
      const check = () => {
        const match = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
        if (!match) return;
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve(match[1]);
      };
      child.stdout!.on('data', check);
      child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${output}`)));
    });
    for (let i = 0; i < 1200 && (await fetch(`${base}/ready`)).status !== 200; i++) await sleep(50);
    return { child, base, output: () => output };
  };
}
