/**
 * The jobs' symmetric fill from memory (jobs/symmetric-fill.ts): the left-out columns of upper-only row
 * blocks, filled from the transposes of the blocks before them, against the matrix itself; with every
 * tile kept, none (all from the file), and a budget that keeps some; blocks back out of order, `wrt`
 * in any order; and a real job on the worker pool whose matrix must be the same, to the bit, whatever
 * the fill's memory.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_MEMORY_BUDGET_BYTES, planRequest, planRowBlocks, symmetricColumns, transposedTiles, type HessianMethod, type RowBlock } from '../src/compute/index.js';
import { selectParameters, type ModelLayout } from '../src/compute/parameters.js';
import { computeHessian, parseEngineRequest } from '../src/hessian.js';
import { JobManager } from '../src/jobs/manager.js';
import { ComputePool } from '../src/jobs/pool.js';
import { ResultStore } from '../src/jobs/store.js';
import { SpareBuffers } from '../src/jobs/spare-buffers.js';
import { SymmetricFill } from '../src/jobs/symmetric-fill.js';
import { freshDir, removeDir, sleep } from './api-helpers.js';
import { fixtures, relativeError } from './helpers.js';

/** A symmetric matrix whose entries above the diagonal are all distinct. */
function symmetricMatrix(size: number): Float32Array {
  const h = new Float32Array(size * size);
  for (let r = 0; r < size; r++) for (let c = r; c < size; c++) h[r * size + c] = h[c * size + r] = r * size + c + 1;
  return h;
}

const LAYOUT: ModelLayout = { inputShape: [3], layers: [{ units: 4, useBias: true }, { units: 5, useBias: true }, { units: 2, useBias: false }] };

/**
 * Runs the fill as JobManager.computeRows does, blocks coming back in `arrival` order (layer by layer,
 * two at a time, the second sometimes first): each block's rows upper-only (the spans' columns 0), kept,
 * then filled once its sources are kept or written, the parts not kept copied from the rows written.
 */
async function runFill(method: HessianMethod, wrt: string[] | undefined, blockSize: number, budgetBytes: number, layout = LAYOUT) {
  const parameters = selectParameters(layout, wrt);
  const size = parameters.reduce((n, t) => n + t.size, 0);
  const h = symmetricMatrix(size);
  const blocks = planRowBlocks(parameters, blockSize, method === 'structured');
  const spansOf = (block: RowBlock) => symmetricColumns(parameters, block, method);
  const fill = new SymmetricFill(blocks, spansOf, budgetBytes);
  const layerOf = (i: number) => parameters[blocks[i].tensor].layer;
  const order = blocks.map((_, i) => i).sort((a, b) => layerOf(a) - layerOf(b) || a - b);
  const written = new Float32Array(size * size).fill(NaN);
  const done = new Array<boolean>(blocks.length).fill(false);
  const waiting: { index: number; rows: Float32Array }[] = [];
  let fromFile = 0;
  let peak = 0;
  const arrive = async (index: number) => {
    const { row, count } = blocks[index];
    const rows = h.slice(row * size, (row + count) * size);
    for (const span of spansOf(blocks[index])) for (let d = 0; d < count; d++) rows.fill(0, d * size + span.offset, d * size + span.offset + span.count);
    fill.keep(index, transposedTiles(rows, row, size, fill.tilesOf(index))); // as the block's thread returns them
    peak = Math.max(peak, fill.bytes);
    expect(fill.bytes).toBeLessThanOrEqual(budgetBytes);
    waiting.push({ index, rows });
  };
  const settle = async () => {
    for (let progress = true; progress; ) {
      progress = false;
      for (const item of [...waiting]) {
        if (!fill.ready(item.index, (source) => done[source])) continue;
        const { row, count } = blocks[item.index];
        for (const span of await fill.fill(item.index, item.rows)) {
          fromFile += span.count;
          for (let d = 0; d < count; d++) {
            for (let r = span.offset; r < span.offset + span.count; r++) item.rows[d * size + r] = written[r * size + row + d]; // NaN if not yet written
          }
        }
        written.set(item.rows, row * size);
        done[item.index] = true;
        waiting.splice(waiting.indexOf(item), 1);
        progress = true;
      }
    }
  };
  for (let k = 0; k < order.length; k += 2) {
    const pair = order.slice(k, k + 2);
    for (const index of k % 4 === 2 ? pair.reverse() : pair) await arrive(index);
    await settle();
  }
  expect(waiting).toEqual([]);
  expect(fill.empty).toBe(true);
  return { matrix: written, h, fromFile, peak };
}

describe('SymmetricFill', () => {
  for (const method of ['structured', 'rOperator'] as const) {
    for (const wrt of [undefined, ['dense_2/kernel', 'dense_3/kernel', 'dense_1/bias', 'dense_1/kernel']]) {
      it(`${method}, wrt ${wrt ? wrt.join(',') : 'all'}: every row as the matrix, with all, none or some of the tiles in memory`, async () => {
        for (const blockSize of [1, 3, 5, 8]) {
          const all = await runFill(method, wrt, blockSize, Infinity);
          expect(all.matrix).toEqual(all.h);
          expect(all.fromFile).toBe(0);
          const none = await runFill(method, wrt, blockSize, 0);
          expect(none.matrix).toEqual(none.h);
          expect(none.peak).toBe(0);
          // Half the most the tiles held at once: some kept, the rest read back.
          const some = await runFill(method, wrt, blockSize, Math.floor(all.peak / 2));
          expect(some.matrix).toEqual(some.h);
          expect(some.fromFile).toBeGreaterThan(0);
          expect(some.fromFile).toBeLessThan(none.fromFile);
        }
      });
    }
  }
});

it('SymmetricFill: a job of more than 512 blocks keeps no tiles and copies every span from the file', async () => {
  const layout: ModelLayout = { inputShape: [20], layers: [{ units: 24, useBias: true }, { units: 3, useBias: true }] }; // P = 579
  const run = await runFill('rOperator', undefined, 1, Infinity, layout);
  expect(run.matrix).toEqual(run.h);
  expect(run.peak).toBe(0);
  expect(run.fromFile).toBe((await runFill('rOperator', undefined, 1, 0, layout)).fromFile);
  // One block fewer than the limit's worth of rows a block: tiles again.
  const tiled = await runFill('rOperator', undefined, 2, Infinity, layout);
  expect(tiled.matrix).toEqual(tiled.h);
  expect(tiled.fromFile).toBe(0);
});

describe('a job whose fill holds all, some or none of its tiles', () => {
  // 280 parameters in three layers, many row blocks over two threads (blocks back out of order).
  const fixture = fixtures().find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
  const pool = new ComputePool(2, process.env.HESSIAN_BACKEND ?? 'auto');
  const dirs: string[] = [];
  afterAll(async () => {
    await pool.destroy();
    await Promise.all(dirs.map(removeDir));
  });

  it.each(['structured', 'rOperator'] as const)('%s: the same matrix to the bit as the in-thread computation, and the reference', async (method) => {
    const request = parseEngineRequest(fixture.request);
    const inThread = await computeHessian(fixture.request, { method, blockSize: 24 });
    const size = inThread.gradient.length;
    for (const fillMemoryBytes of [undefined, 0, 4096]) {
      const dir = await freshDir();
      dirs.push(dir);
      const store = new ResultStore(dir);
      const manager = new JobManager(store, pool, { maxQueued: 4, ttlSeconds: 600, fillMemoryBytes });
      await manager.init();
      const job = manager.submit(request, { ...planRequest(request, DEFAULT_MEMORY_BUDGET_BYTES, method), blockSize: 24 });
      for (let i = 0; i < 600 && !['succeeded', 'failed', 'cancelled'].includes(job.record.status); i++) await Promise.race([manager.changed(job), sleep(200)]);
      expect(job.record.error ?? null).toBeNull();
      expect(job.record.meta?.method).toBe(method);
      const matrix = await store.readRows(job.record.id, size, 0, size);
      expect(matrix).toEqual(inThread.hessian);
      expect(relativeError(matrix, fixture.expected.hessian.flat())).toBeLessThan(1e-4);
    }
  });

  it('a synchronous answer\'s rows that its stream holds skip the file, unless a later fill reads them back', async () => {
    const request = parseEngineRequest(fixture.request);
    const expected = (await computeHessian(fixture.request, { method: 'structured', blockSize: 24 })).hessian!;
    const size = Math.sqrt(expected.length);
    for (const [ephemeral, fillMemoryBytes, written] of [
      [true, undefined, false], // every tile kept: nothing read back, nothing written
      [true, 0, true], // the fill reads every block back from the file: every block written
      [false, undefined, true], // a job's result is read from its file
    ] as const) {
      const dir = await freshDir();
      dirs.push(dir);
      const store = new ResultStore(dir);
      const manager = new JobManager(store, pool, { maxQueued: 4, ttlSeconds: 600, fillMemoryBytes });
      await manager.init();
      const job = manager.submit(request, { ...planRequest(request, DEFAULT_MEMORY_BUDGET_BYTES, 'structured'), blockSize: 24 }, { ephemeral });
      const held = new Float32Array(size * size).fill(NaN);
      manager.onRows(job, (firstRow, rows) => {
        held.set(rows, firstRow * size);
        return true;
      });
      const record = await manager.finished(job);
      expect(record.error ?? null).toBeNull();
      expect(held).toEqual(expected);
      const file = await store.readRows(record.id, size, 0, size);
      if (written) expect(file).toEqual(expected);
      else expect(file.every((value) => value === 0)).toBe(true);
    }
  });
  it('jobs in a row write their rows and tiles into the buffers of earlier blocks, and never into rows a stream still holds', async () => {
    const small = fixtures().find((c) => c.name === 'larger_5_12_12_4_tanh_cce_logits')!;
    const dir = await freshDir();
    dirs.push(dir);
    const store = new ResultStore(dir);
    const manager = new JobManager(store, pool, { maxQueued: 4, ttlSeconds: 600 });
    await manager.init();
    const take = vi.spyOn(SpareBuffers.prototype, 'take');
    try {
      // The same model at two block sizes (spares of other sizes), then held rows, then the first again.
      const runs = [
        { blockSize: 24, hold: false },
        { blockSize: 36, hold: false },
        { blockSize: 24, hold: true },
        { blockSize: 24, hold: false },
      ];
      const heldRuns: { held: Float32Array[]; expected: Float32Array; size: number }[] = [];
      for (const { blockSize, hold } of runs) {
        const request = parseEngineRequest(small.request);
        const expected = (await computeHessian(small.request, { method: 'structured', blockSize })).hessian!;
        const size = Math.sqrt(expected.length);
        const job = manager.submit(request, { ...planRequest(request, DEFAULT_MEMORY_BUDGET_BYTES, 'structured'), blockSize }, { ephemeral: hold });
        const held: Float32Array[] = [];
        if (hold) {
          manager.onRows(job, (_, rows) => {
            held.push(rows); // kept as they came (not copied): a later block or job must not write into them
            return true;
          });
          heldRuns.push({ held, expected, size });
        }
        const record = await manager.finished(job);
        expect(record.error ?? null).toBeNull();
        if (!hold) expect(await store.readRows(record.id, size, 0, size)).toEqual(expected);
      }
      // Read after the last job ran on the spares.
      for (const { held, expected, size } of heldRuns) {
        const matrix = new Float32Array(size * size);
        let row = 0;
        for (const rows of held) {
          matrix.set(rows, row * size);
          row += rows.length / size;
        }
        expect(row).toBe(size);
        expect(matrix).toEqual(expected);
      }
      expect(take.mock.results.filter((r) => r.value !== null).length).toBeGreaterThan(10);
    } finally {
      take.mockRestore();
    }
  });
});

describe('SpareBuffers', () => {
  it('hands out the smallest buffer of the bytes asked to twice that, each once, and keeps at most its limit', () => {
    const spares = new SpareBuffers(100);
    const [a, b, c] = [new ArrayBuffer(40), new ArrayBuffer(24), new ArrayBuffer(32)];
    for (const buffer of [a, b, c]) spares.give(buffer);
    spares.give(new ArrayBuffer(8)); // 104 bytes: past the limit, not kept
    expect(spares.take(20)).toBe(b);
    expect(spares.take(20)).toBe(c);
    expect(spares.take(19)).toBeNull(); // a (40 bytes) is more than twice 19: kept for a larger ask
    expect(spares.take(16)).toBeNull();
    expect(spares.take(21)).toBe(a);
    expect(spares.take(1)).toBeNull();
  });

  it('keeps no moved (empty) or shared buffer, and drops all on clear()', () => {
    const spares = new SpareBuffers(1024);
    const moved = new ArrayBuffer(64);
    structuredClone(moved, { transfer: [moved] });
    expect(moved.byteLength).toBe(0);
    spares.give(moved);
    spares.give(new SharedArrayBuffer(64));
    expect(spares.take(0)).toBeNull();
    spares.give(new ArrayBuffer(64));
    spares.clear();
    expect(spares.take(64)).toBeNull();
  });
});
