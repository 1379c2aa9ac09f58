/**
 * JSON model uploads (POST /v1/models) read on a body thread (issue 7): the same answers and errors as
 * on the main thread for every model form, a model imported on the thread computes the float64
 * reference, and /health keeps answering while a ~30 MiB upload of nested arrays is parsed, validated
 * and imported. Loopback only; every loop bounded.
 */
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
// TF.js with its own backends, in this test process only (to save a model.json as TF.js does).
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { postFile, writeBigModel } from '../src/scripts/body-load.js';
import { expectJsonMatchesFixture, freshDir, removeDir, rng, useApp, type TestApp } from './api-helpers.js';
import { expectHealthResponsive } from './health-helpers.js';
import { fixtures, kerasFixtures } from './helpers.js';
import { mutate } from './import-helpers.js';
import { serverProcesses } from './server-process.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const graph = fixtures('graphs.json')[0];

/** A TF.js model.json (as model.save writes it) with its weights inline as base64 weightData, for a dense fixture. */
async function tfjsJsonModel(request: any) {
  const { model } = request;
  const layers = model.layers.map((layer: any, l: number) =>
    tf.layers.dense({ units: layer.units, activation: layer.activation, useBias: layer.useBias ?? true, ...(l === 0 ? { inputShape: model.inputShape } : {}) }),
  );
  const built = tf.sequential({ layers });
  built.setWeights(model.layers.flatMap((layer: any) => [tf.tensor2d(layer.kernel), ...(layer.useBias === false ? [] : [tf.tensor1d(layer.bias)])]));
  let artifacts: tf.io.ModelArtifacts | undefined;
  await built.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  return {
    modelTopology: artifacts!.modelTopology,
    weightsManifest: [{ paths: ['./model.weights.bin'], weights: artifacts!.weightSpecs }],
    format: artifacts!.format,
    generatedBy: artifacts!.generatedBy,
    weightData: Buffer.from(artifacts!.weightData as ArrayBuffer).toString('base64'),
  };
}

/** Upload bodies of every form, valid and not, as JSON text. */
async function uploadBodies(): Promise<{ label: string; payload: string }[]> {
  const models: [string, unknown][] = [
    ['our JSON, seeded', { inputShape: [3], seed: 3, layers: [{ type: 'dense', units: 4, activation: 'tanh' }, { type: 'dense', units: 2 }] }],
    ['our JSON, with weights', seed.request.model],
    [`our JSON graph ${graph.name}`, graph.request.model],
    ['TF.js model.json with weightData', await tfjsJsonModel(seed.request)],
    ...kerasFixtures().map((k) => [`Keras ${k.name}`, { ...k.to_json, weights: k.weights }] as [string, unknown]),
  ];
  const random = rng(17);
  const bodies = models.flatMap(([label, model]) => [
    { label: `${label} as {"model"}`, payload: JSON.stringify({ model }) },
    { label: `${label} as the body`, payload: JSON.stringify(model) },
    ...Array.from({ length: 4 }, (_, i) => ({ label: `${label}, mutation ${i}`, payload: JSON.stringify({ model: mutate(model, random) }) })),
  ]);
  const text = JSON.stringify({ model: seed.request.model });
  return [
    ...bodies,
    { label: 'a stored model reference', payload: JSON.stringify({ model: { id: randomUUID() } }) },
    { label: 'a bare reference', payload: JSON.stringify({ id: randomUUID() }) },
    { label: 'a model and another field', payload: JSON.stringify({ model: seed.request.model, loss: 'meanSquaredError' }) },
    { label: 'a number as the model', payload: '{"model":5}' },
    { label: 'null', payload: 'null' },
    { label: 'a list', payload: '[1,2]' },
    { label: 'a string', payload: '"model"' },
    { label: 'truncated JSON', payload: text.slice(0, -1) },
    { label: 'prototype poisoning', payload: `{"__proto__":{"polluted":1},${text.slice(1)}` },
  ];
}

/** An answer without what differs between two uploads of the same model (id, times, links). */
const stable = (body: any) => ({ ...body, id: undefined, createdAt: undefined, expiresAt: undefined, links: undefined });

describe('model uploads: the same answers whichever thread reads the body', () => {
  const onMain = useApp({ BODY_THREAD_BYTES: 2 ** 30, WORKERS: 1 });
  const onThreads = useApp({ BODY_THREAD_BYTES: 0, WORKERS: 1 });

  it('for every model form, valid, mutated and malformed', async () => {
    const bodies = await uploadBodies();
    const statuses = new Set<number>();
    for (const { label, payload } of bodies) {
      const send = (t: TestApp) => t.app.inject({ method: 'POST', url: '/v1/models', headers: { 'content-type': 'application/json' }, payload });
      const [main, thread] = [await send(onMain), await send(onThreads)];
      const what = `${label}: ${thread.body.slice(0, 300)}`;
      expect(thread.statusCode, what).toBe(main.statusCode);
      expect(thread.statusCode, what).toBeLessThan(500);
      expect(stable(JSON.parse(thread.body)), what).toEqual(stable(JSON.parse(main.body)));
      statuses.add(main.statusCode);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect([...statuses].sort()).toEqual([201, 400]);
  }, 120_000);

  it('a Keras model imported on a body thread gives the float64 reference Hessian by id', async () => {
    const k = kerasFixtures()[0];
    const uploaded = await onThreads.http().post('/v1/models').send({ model: { ...k.to_json, weights: k.weights } });
    expect(uploaded.status).toBe(201);
    const res = await onThreads.http().post('/v1/hessian').send({ model: { id: uploaded.body.id }, data: k.data });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expectJsonMatchesFixture(res.body, { name: k.name, request: {}, expected: k.expected });
  }, 120_000);
});

describe('a ~30 MiB JSON model upload against the server process', () => {
  const start = serverProcesses();
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await removeDir(dir);
  });

  it('/health answers within 100 ms (p99) while it is parsed, validated and imported; the stored model has its parameters', async () => {
    const dir = await freshDir();
    dirs.push(dir);
    const server = await start(dir, { BODY_THREAD_HEAP_MB: '1024' });
    const file = join(dir, 'model.json');
    const [inputs, units] = [1000, 5600];
    await writeBigModel(file, inputs, units);
    const bytes = statSync(file).size;
    expect(bytes).toBeGreaterThan(29 * 2 ** 20);
    expect(bytes).toBeLessThan(32 * 2 ** 20);
    const ids: string[] = [];
    await expectHealthResponsive(server.base, `a ${(bytes / 2 ** 20).toFixed(1)} MiB model upload`, async () => {
      const posted = await postFile(`${server.base}/v1/models`, file);
      expect(posted.status, JSON.stringify(posted.body).slice(0, 300)).toBe(201);
      expect(posted.body.parameters).toEqual([
        { name: 'dense_1/kernel', shape: [inputs, units], offset: 0, size: inputs * units },
        { name: 'dense_1/bias', shape: [units], offset: inputs * units, size: units },
      ]);
      ids.push(posted.body.id);
    });
    for (const id of ids) expect((await fetch(`${server.base}/v1/models/${id}`, { method: 'DELETE' })).status).toBe(204);
    server.child.kill('SIGKILL');
  }, 300_000);
});
