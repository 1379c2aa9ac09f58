/**
 * /health while a large body is handled (issue 7): within 100 ms (p99) on a quiet machine, and on a
 * loaded one at least no freeze. Shared by the big-body tests.
 */
import { availableParallelism } from 'node:os';
import { expect } from 'vitest';
import { healthAround, showLatencies, type HealthAround } from '../src/scripts/body-load.js';

/**
 * Runs `action` (which sends the body and checks its answer) while /health is timed, up to twice. The
 * 100 ms bound holds the body's handling to account only on a quiet machine: a load average under the
 * core count and /health fast just before and after (on a loaded one, a garbage collection of the main
 * thread's 30 MiB heap alone took 60-120 ms); a second attempt when the first one was disturbed. On a
 * loaded machine its own lag is in every figure; what must not come back is the seconds-long freeze of
 * parsing on the main thread.
 */
export async function expectHealthResponsive(base: string, what: string, action: () => Promise<void>): Promise<void> {
  const quietMs = 25;
  const isQuiet = ({ before, after, load }: HealthAround<void>) => Math.max(before.p99, after.p99) < quietMs && load < availableParallelism();
  const attempts: HealthAround<void>[] = [];
  for (let attempt = 0; attempt < 2; attempt++) {
    const measured = await healthAround(base, action);
    attempts.push(measured);
    const { before, during, after, load } = measured;
    console.log(`load average ${load.toFixed(2)}; /health before: ${showLatencies(before)}; during ${what}: ${showLatencies(during)}; after: ${showLatencies(after)}`);
    expect(during.count).toBeGreaterThanOrEqual(50);
    if (isQuiet(measured) && during.p99 < 100) break;
  }
  const quiet = attempts.filter(isQuiet);
  if (quiet.length > 0) {
    expect(Math.min(...quiet.map(({ during }) => during.p99))).toBeLessThan(100);
  } else {
    console.log(`machine too loaded for the 100 ms bound (load average over ${availableParallelism()} or its own /health p99 ${quietMs} ms or more): checked no freeze only`);
    for (const { before, during } of attempts) expect(Math.min(during.p99 - before.p99, during.max - before.max)).toBeLessThan(400);
  }
}
