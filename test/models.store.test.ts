/**
 * ModelStore on its own: a stored graph comes back weight for weight, expiry and quota, recovery of
 * what a previous run left (complete, expired, half-written, half-deleted, foreign), and writes that
 * fail leaving nothing behind.
 */
import { randomUUID } from 'node:crypto';
import * as fsPromises from 'node:fs/promises';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GraphModel } from '../src/compute/spec.js';
import { ResultsQuotaError } from '../src/jobs/manager.js';
import { MODEL_MARKER, ModelStore, type ImportedModel } from '../src/jobs/models.js';
import { StorageError, type StoreFs } from '../src/jobs/store.js';
import { tempDirs } from './api-helpers.js';

const dirFor = tempDirs();

const values = (n: number, start: number) => Float32Array.from({ length: n }, (_, i) => start + i / 7);

/** A small CNN-like graph with weights of several kinds, one left out (seeded), one layer not trainable. */
function graph(): GraphModel {
  return {
    input: { name: 'image', shape: [4, 4, 1], dtype: 'float32' },
    nodes: [
      {
        name: 'conv',
        type: 'conv2d',
        inputs: ['image'],
        config: { filters: 2, kernelSize: [3, 3], strides: [1, 1], padding: 'same', activation: { type: 'relu' }, useBias: true, kernelL2: 0.01 },
        weights: { kernel: values(18, 0.5), bias: values(2, -1) },
        trainable: true,
      },
      {
        name: 'bn',
        type: 'batchNormalization',
        inputs: ['conv'],
        config: { axis: 3, epsilon: 0.001, center: true, scale: true },
        weights: { gamma: values(2, 1), beta: values(2, 0), moving_mean: values(2, 0.1), moving_variance: values(2, 2) },
        trainable: false,
      },
      { name: 'flat', type: 'flatten', inputs: ['bn'], config: {}, weights: {}, trainable: true },
      {
        name: 'out',
        type: 'dense',
        inputs: ['flat'],
        config: { units: 3, activation: { type: 'softmax' }, useBias: true, kernelL2: 0 },
        weights: { bias: values(3, 2) }, // the kernel is left out: seeded
        trainable: true,
      },
    ],
    output: 'out',
    seed: 42,
  };
}

const imported = (model = graph()): ImportedModel => ({
  model,
  loss: { type: 'categoricalCrossentropy', fromLogits: false },
  summary: { parameters: [{ name: 'conv/kernel', shape: [3, 3, 1, 2], offset: 0, size: 18 }], size: 18, inputShape: [4, 4, 1], outputShape: [3] },
});

const store = (dir: string, options: Partial<ConstructorParameters<typeof ModelStore>[1]> = {}, fs?: StoreFs) =>
  new ModelStore(dir, { ttlSeconds: 60, maxBytes: 1e9, otherBytes: () => 0, ...options }, fs);

describe('ModelStore', () => {
  it('a stored graph loads back equal: every config, every weight value (float32 exact), left-out weights still left out', async () => {
    const models = store(await dirFor());
    await models.recover();
    const record = await models.put(imported(), 'owner-digest');
    expect(record.loss).toEqual({ type: 'categoricalCrossentropy', fromLogits: false });
    const loaded = await models.load(record);
    expect(loaded).toEqual(graph());
    for (const node of loaded!.nodes) for (const weights of Object.values(node.weights)) expect(weights).toBeInstanceOf(Float32Array);
    expect(loaded!.nodes[3].weights.kernel).toBeUndefined();
  });

  it('only its owner sees a model; an expired one is gone', async () => {
    const models = store(await dirFor(), { ttlSeconds: 10 });
    await models.recover();
    const now = Date.now();
    const record = await models.put(imported(), 'a', now);
    expect(models.get(record.id, 'a', now)).not.toBeNull();
    expect(models.get(record.id, 'b', now)).toBeNull();
    expect(models.get(record.id, undefined, now)).toBeNull();
    expect(models.get(record.id, 'a', now + 10_000)).toBeNull();
  });

  it('bytes count what is on disk; past maxBytes (with the results held elsewhere) an upload is a ResultsQuotaError and nothing is written', async () => {
    const dir = await dirFor();
    let results = 0;
    const models = store(dir, { maxBytes: 5000, otherBytes: () => results });
    await models.recover();
    const record = await models.put(imported());
    const files = await readdir(join(dir, record.id));
    let onDisk = 0;
    for (const name of files) onDisk += (await fsPromises.stat(join(dir, record.id, name))).size;
    expect(record.bytes).toBeGreaterThanOrEqual(onDisk);
    expect(record.bytes).toBeLessThan(onDisk + 64);
    expect(models.bytes).toBe(record.bytes);
    results = 5000 - record.bytes - 1;
    await expect(models.put(imported())).rejects.toBeInstanceOf(ResultsQuotaError);
    expect((await readdir(dir)).length).toBe(1);
  });

  it('a write that fails is a StorageError and leaves no directory; a failed delete keeps the model', async () => {
    const dir = await dirFor();
    const enospc = () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
    const failingWrite = store(dir, {}, { ...fsPromises, rename: enospc } as StoreFs);
    await failingWrite.recover();
    await expect(failingWrite.put(imported())).rejects.toBeInstanceOf(StorageError);
    expect(await readdir(dir)).toEqual([]);
    expect(failingWrite.bytes).toBe(0);

    const models = store(dir);
    await models.recover();
    const record = await models.put(imported());
    const failingDelete = store(dir, {}, { ...fsPromises, rename: enospc } as StoreFs);
    await failingDelete.recover();
    await expect(failingDelete.remove(record.id)).rejects.toBeInstanceOf(StorageError);
    expect(failingDelete.get(record.id, undefined)).not.toBeNull();
  });

  it('recovery keeps complete models, removes expired, half-written and half-deleted ones, and leaves foreign directories alone', async () => {
    const dir = await dirFor();
    const first = store(dir, { ttlSeconds: 100 });
    await first.recover();
    const now = Date.now();
    const kept = await first.put(imported(), undefined, now);
    const expired = await first.put(imported(), undefined, now - 200_000);
    const truncated = await first.put(imported(), undefined, now);
    await writeFile(join(dir, truncated.id, 'weights.bin'), Buffer.alloc(4));
    const halfDeleted = join(dir, `${randomUUID()}.deleting`);
    await mkdir(halfDeleted);
    await writeFile(join(halfDeleted, MODEL_MARKER), '');
    const foreign = [join(dir, randomUUID()), join(dir, 'notes')];
    for (const path of foreign) {
      await mkdir(path);
      await writeFile(join(path, 'model.json'), '{}');
    }

    const second = store(dir, { ttlSeconds: 100 });
    await second.recover(now);
    expect(second.get(kept.id, undefined, now)).toEqual(kept);
    expect(await second.load(kept)).toEqual(graph());
    for (const gone of [expired, truncated]) expect(second.get(gone.id, undefined, now)).toBeNull();
    expect((await readdir(dir)).sort()).toEqual([kept.id, ...foreign.map((p) => p.split('/').pop()!)].sort());
  });
});
