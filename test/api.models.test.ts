/**
 * Stored models (POST/GET/DELETE /v1/models): uploads as JSON and as TF.js's multipart form, the
 * parameter map, ownership with API keys, the results' TTL and quota, restarts, and clear 4xx for
 * bad uploads.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
// TF.js with its own backends, in this test process only: the service computes in its worker threads.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelStore } from '../src/jobs/models.js';
import { expectJsonMatchesFixture, freshDir, isFinishedStatus, lossError, pollJob, removeDir, sleep, startApp, useApp } from './api-helpers.js';
import { fixtures } from './helpers.js';

const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!;
const KEY_A = 'key-a-0123456789';
const KEY_B = 'key-b-9876543210';

/** A multipart/form-data body built by hand (as a client without TF.js would send it). */
function multipart(parts: { name: string; filename?: string; type?: string; body: Buffer | string }[]) {
  const boundary = `----hessian-test-${randomUUID()}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename ? `; filename="${part.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: ${disposition}\r\ncontent-type: ${part.type ?? 'application/octet-stream'}\r\n\r\n`));
    chunks.push(Buffer.isBuffer(part.body) ? part.body : Buffer.from(part.body));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { type: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(chunks) };
}

/** A dense model of our own JSON with P = 3*4 + 4 + 4*2 + 2 = 26. */
const DENSE = {
  inputShape: [3],
  layers: [
    { type: 'dense', units: 4, activation: 'tanh', name: 'hidden' },
    { type: 'dense', units: 2, activation: 'linear' },
  ],
  seed: 3,
};

describe('POST, GET and DELETE /v1/models with JSON bodies', () => {
  const t = useApp({ WORKERS: 1 });

  it('201 with the id, the parameter map and shapes; GET answers the same plus created and expires; DELETE 204 then 404', async () => {
    const created = await t.http().post('/v1/models').send({ model: DENSE });
    expect(created.status).toBe(201);
    const { id } = created.body;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.headers.location).toBe(`/v1/models/${id}`);
    expect(created.body.parameters).toEqual([
      { name: 'hidden/kernel', shape: [3, 4], offset: 0, size: 12 },
      { name: 'hidden/bias', shape: [4], offset: 12, size: 4 },
      { name: 'dense_2/kernel', shape: [4, 2], offset: 16, size: 8 },
      { name: 'dense_2/bias', shape: [2], offset: 24, size: 2 },
    ]);
    expect(created.body).toMatchObject({ size: 26, inputShape: [3], outputShape: [2] });
    const expires = Date.parse(created.body.expiresAt) - Date.parse(created.body.createdAt);
    expect(expires).toBe(t.config.RESULT_TTL_SECONDS * 1000);

    const got = await t.http().get(`/v1/models/${id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created.body);

    expect((await t.http().delete(`/v1/models/${id}`)).status).toBe(204);
    const gone = await t.http().get(`/v1/models/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.error).toBe('not_found');
    expect(gone.body.message).toContain(id);
    expect((await t.http().delete(`/v1/models/${id}`)).status).toBe(404);
    expect(existsSync(join(t.dir, id))).toBe(false);
  });

  it('the model object itself is accepted as the body, as {"model": ...} is', async () => {
    const bare = await t.http().post('/v1/models').send(seed.request.model);
    expect(bare.status).toBe(201);
    expect(bare.body.parameters).toEqual(seed.expected.parameters.map(({ name, shape, offset, size }: any) => ({ name, shape, offset, size })));
  });

  it('a bad model is a 400 naming the field; a reference to a stored model cannot be uploaded; other media types 415', async () => {
    const bad = await t.http().post('/v1/models').send({ model: { ...DENSE, layers: [{ ...DENSE.layers[0], units: 0 }] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_request');
    expect(bad.body.details[0].path).toBe('model.layers[0].units');

    const reference = await t.http().post('/v1/models').send({ model: { id: randomUUID() } });
    expect(reference.status).toBe(400);
    expect(reference.body.message).toMatch(/reference to a stored model/);

    const text = await t.http().post('/v1/models').set('content-type', 'application/xml').send('<model/>');
    expect(text.status).toBe(415);
    expect(text.body.message).toMatch(/application\/json, or multipart\/form-data/);
    // Other routes still refuse multipart bodies.
    const form = multipart([{ name: 'model.json', body: '{}' }]);
    const elsewhere = await t.http().post('/v1/hessian').set('content-type', form.type).send(form.body);
    expect(elsewhere.status).toBe(415);
    expect(elsewhere.body.message).toBe('send the request body as application/json');
  });

  it('malformed ids and unknown ids are 404 or 400, never 500', async () => {
    expect((await t.http().get(`/v1/models/${randomUUID()}`)).status).toBe(404);
    expect((await t.http().get('/v1/models/not_an_id!')).status).toBe(400);
  });
});

/** A TF.js model with a fixture's architecture and weights (its dense layers, kernels [in][units] as TF.js lays them out). */
function tfjsModelOf(fixture: (typeof seed)['request']) {
  const { model } = fixture as any;
  const layers = model.layers.map((layer: any, l: number) =>
    tf.layers.dense({ units: layer.units, activation: layer.activation, useBias: layer.useBias ?? true, ...(l === 0 ? { inputShape: model.inputShape } : {}) }),
  );
  const built = tf.sequential({ layers });
  built.setWeights(model.layers.flatMap((layer: any) => [tf.tensor2d(layer.kernel), ...(layer.useBias === false ? [] : [tf.tensor1d(layer.bias)])]));
  return built;
}

/** The app listening on an ephemeral loopback port (TF.js's http handler needs a URL); its base URL once listening. */
function listening(t: ReturnType<typeof useApp>): () => string {
  let base = '';
  beforeAll(async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  return () => base;
}

/** A fixture whose last layer is softmax under categorical cross-entropy (the fused path). */
const softmax = fixtures().find((c) => c.name === 'loss_cce_probs_softmax')!;

describe('TF.js: model.save(tf.io.http(url)) against the running service', () => {
  const t = useApp({ WORKERS: 1 });
  const base = listening(t);

  it('201 with the parameter map in trainableWeights order; the stored graph holds getWeights() exactly', async () => {
    const model = tfjsModelOf(softmax.request);
    const saved = await model.save(tf.io.http(`${base()}/v1/models`));
    expect(saved.responses![0].status).toBe(201);
    const answer = await saved.responses![0].json();
    expect(answer.parameters.map((p: any) => p.name)).toEqual(model.trainableWeights.map((w) => w.originalName));
    expect(answer.parameters.map((p: any) => p.shape)).toEqual(softmax.expected.parameters.map((p: any) => p.shape));
    expect(answer).toMatchObject({ size: softmax.expected.parameters.reduce((n, p) => n + p.size, 0), inputShape: [4], outputShape: [3] });
    expect(answer.loss).toBeUndefined();
    expect((await t.http().get(`/v1/models/${answer.id}`)).body).toEqual(answer);

    // What a request by id will compute from: the graph on disk, read back by a store of its own.
    const store = new ModelStore(t.dir, { ttlSeconds: 3600, maxBytes: Infinity, otherBytes: () => 0 });
    await store.recover();
    const graph = (await store.load(store.get(answer.id, undefined)!))!;
    const stored = graph.nodes.flatMap((node) => [node.weights.kernel, node.weights.bias].filter((w) => w !== undefined).map((w) => Array.from(w!)));
    expect(stored).toEqual(model.getWeights().map((w) => Array.from(w.dataSync())));
    expect(graph.nodes.map((node) => [node.type, (node.config as any).activation.type])).toEqual([['dense', 'tanh'], ['dense', 'softmax']]);
  });

  it("a compiled model saved with its optimizer: its training config's loss is kept, its optimizer weights are not parameters", async () => {
    const model = tfjsModelOf(softmax.request);
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const saved = await model.save(tf.io.http(`${base()}/v1/models`), { includeOptimizer: true });
    expect(saved.responses![0].status).toBe(201);
    const answer = await saved.responses![0].json();
    expect(answer.loss.type).toBe('categoricalCrossentropy');
    expect(answer.parameters.map((p: any) => p.name)).toEqual(model.trainableWeights.map((w) => w.originalName));
  });

  it('weights of the wrong size for the manifest: 400 naming them', async () => {
    let artifacts: tf.io.ModelArtifacts | undefined;
    await tfjsModelOf(seed.request).save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
    const modelJson = { modelTopology: artifacts!.modelTopology, weightsManifest: [{ paths: ['./model.weights.bin'], weights: artifacts!.weightSpecs }], format: artifacts!.format, generatedBy: artifacts!.generatedBy };
    const weights = Buffer.from(artifacts!.weightData as ArrayBuffer);
    const form = multipart([
      { name: 'model.json', filename: 'model.json', type: 'application/json', body: JSON.stringify(modelJson) },
      { name: 'model.weights.bin', filename: 'model.weights.bin', body: weights.subarray(0, weights.length - 4) },
    ]);
    const res = await t.http().post('/v1/models').set('content-type', form.type).send(form.body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.message).toContain(`${weights.length - 4}`);
  });
});

describe('requests naming a stored model: {"model": {"id"}} in /v1/hessian, /v1/jobs and /v1/curvature', () => {
  const t = useApp({ WORKERS: 1 });
  const base = listening(t);
  const { data } = softmax.request as any;

  it('a TF.js model saved with tf.io.http: /v1/hessian by id equals the inline model and the float64 reference; a job by id too', async () => {
    const saved = await tfjsModelOf(softmax.request).save(tf.io.http(`${base()}/v1/models`));
    const { id } = await saved.responses![0].json();
    const byId = await t.http().post('/v1/hessian').send({ model: { id }, loss: softmax.request.loss, data });
    expect(byId.status).toBe(200);
    expectJsonMatchesFixture({ ...byId.body, parameters: softmax.expected.parameters }, softmax);
    const inline = await t.http().post('/v1/hessian').send(softmax.request);
    expect(byId.body.hessian).toEqual(inline.body.hessian);
    expect(byId.body.gradient).toEqual(inline.body.gradient);

    const job = await t.http().post('/v1/jobs').send({ model: { id }, loss: softmax.request.loss, data });
    expect(job.status).toBe(202);
    const seen = await pollJob(t.http, job.body.id, (j) => isFinishedStatus(j.status));
    expect(seen[seen.length - 1].status).toBe('succeeded');
    const result = await t.http().get(`/v1/jobs/${job.body.id}/result`);
    // A job runs on HESSIAN_BACKEND and this small request on SMALL_LANE_BACKEND: equal when the two are the same, else within the tolerance.
    if (result.body.meta.backend === inline.body.meta.backend) expect(result.body.hessian).toEqual(inline.body.hessian);
    expectJsonMatchesFixture({ ...result.body, parameters: softmax.expected.parameters }, softmax);

    const trace = await t.http().post('/v1/curvature').send({ model: { id }, loss: softmax.request.loss, data, quantity: 'trace' });
    expect(trace.status).toBe(200);
    const diagonal = softmax.expected.hessian.map((row: number[], i: number) => row[i]);
    expect(lossError(trace.body.trace, diagonal.reduce((a: number, b: number) => a + b, 0))).toBeLessThan(1e-4);
  });

  it('a TF.js CNN (conv2d, max pooling, flatten, dense) saved with tf.io.http: its Hessian by id matches the float64 reference', async () => {
    const lenet = fixtures('graphs.json').find((c) => c.name === 'lenet_valid_conv_maxpool_sparse_cce_logits_binary_x')!;
    const { model: wire, loss, data: lenetData } = lenet.request as any;
    const layers = wire.layers.map((layer: any, l: number) => {
      const first = l === 0 ? { inputShape: wire.inputShape } : {};
      if (layer.type === 'conv2d') return tf.layers.conv2d({ filters: layer.filters, kernelSize: layer.kernelSize, activation: layer.activation, ...first });
      if (layer.type === 'maxPooling2d') return tf.layers.maxPooling2d({ poolSize: layer.poolSize });
      if (layer.type === 'flatten') return tf.layers.flatten();
      return tf.layers.dense({ units: layer.units, activation: layer.activation });
    });
    const model = tf.sequential({ layers });
    model.setWeights(wire.layers.flatMap((layer: any) => (layer.kernel ? [tf.tensor(layer.kernel), tf.tensor(layer.bias)] : [])));
    const saved = await model.save(tf.io.http(`${base()}/v1/models`));
    const { id } = await saved.responses![0].json();
    const byId = await t.http().post('/v1/hessian').send({ model: { id }, loss, data: lenetData });
    expect(byId.status).toBe(200);
    expect(byId.body.meta.method).toBe('graph');
    // TF.js names the layers itself (conv2d_Conv2D1, ...): the map's shapes and offsets are the reference's.
    expect(byId.body.parameters.map((p: any) => p.name)).toEqual(model.trainableWeights.map((w) => w.originalName));
    expectJsonMatchesFixture({ ...byId.body, parameters: lenet.expected.parameters }, lenet);
  });

  it("a compiled model's stored loss is used when the request names none", async () => {
    const model = tfjsModelOf(softmax.request);
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const saved = await model.save(tf.io.http(`${base()}/v1/models`), { includeOptimizer: true });
    const { id } = await saved.responses![0].json();
    const byId = await t.http().post('/v1/hessian').send({ model: { id }, data });
    expect(byId.status).toBe(200);
    expectJsonMatchesFixture({ ...byId.body, parameters: softmax.expected.parameters }, softmax);
    // Without a training config and without a loss: a 400 saying so.
    const plain = await (await tfjsModelOf(softmax.request).save(tf.io.http(`${base()}/v1/models`))).responses![0].json();
    const noLoss = await t.http().post('/v1/hessian').send({ model: { id: plain.id }, data });
    expect(noLoss.status).toBe(400);
    expect(noLoss.body.message).toMatch(/loss is required/);
  });

  it('an unknown or deleted id is a 404 in every request route; an id with other fields is a 400; another key cannot use it', async () => {
    const saved = await tfjsModelOf(seed.request).save(tf.io.http(`${base()}/v1/models`));
    const { id } = await saved.responses![0].json();
    expect((await t.http().delete(`/v1/models/${id}`)).status).toBe(204);
    const { loss, data: seedData } = seed.request as any;
    for (const path of ['/v1/hessian', '/v1/jobs', '/v1/curvature']) {
      const res = await t.http().post(path).send({ model: { id }, loss, data: seedData, ...(path === '/v1/curvature' ? { quantity: 'trace' } : {}) });
      expect(res.status, path).toBe(404);
      expect(res.body.error).toBe('not_found');
      expect(res.body.message).toContain(`no model ${id}`);
    }
    const extra = await t.http().post('/v1/hessian').send({ model: { id, layers: [] }, loss, data: seedData });
    expect(extra.status).toBe(400);
    expect(extra.body.details[0].path).toMatch(/^model/);
  });
});

describe('multipart uploads that cannot be used are clear 4xx', () => {
  const t = useApp({ WORKERS: 1, MAX_BODY_BYTES: 4096 });
  const post = (form: { type: string; body: Buffer }) => t.http().post('/v1/models').set('content-type', form.type).send(form.body);
  const manifest = { modelTopology: {}, weightsManifest: [{ paths: ['./model.weights.bin'], weights: [] }] };

  it('no model.json part: 400 naming the part, the parts received and what TF.js sends', async () => {
    const res = await post(multipart([{ name: 'weights', filename: 'model.weights.bin', body: Buffer.alloc(8) }]));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.message).toMatch(/no part named 'model\.json' \(parts received: 'weights'\).*tf\.io\.http/);
  });

  it('model.json that is not JSON: 400 invalid_json naming the part', async () => {
    const res = await post(multipart([{ name: 'model.json', filename: 'model.json', type: 'application/json', body: '{"modelTopology": ' }]));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_json');
    expect(res.body.message).toMatch(/^the part model\.json is not valid JSON/);
  });

  it('a weight file the manifest lists but the upload lacks, or a part it does not list: 400 naming them', async () => {
    const missing = await post(multipart([{ name: 'model.json', filename: 'model.json', body: JSON.stringify(manifest) }]));
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/lists the weight file 'model\.weights\.bin' but the upload has no such part \(parts received: 'model\.json'\)/);
    const extra = await post(
      multipart([
        { name: 'model.json', filename: 'model.json', body: JSON.stringify(manifest) },
        { name: 'model.weights.bin', filename: 'model.weights.bin', body: Buffer.alloc(4) },
        { name: 'other.bin', filename: 'other.bin', body: Buffer.alloc(4) },
      ]),
    );
    expect(extra.status).toBe(400);
    expect(extra.body.message).toMatch(/parts 'other\.bin' that model\.json does not list; accepted: 'model\.json' and the weight files it lists \('model\.weights\.bin'\)/);
    const twice = await post(
      multipart([
        { name: 'model.json', body: JSON.stringify(manifest) },
        { name: 'model.json', body: JSON.stringify(manifest) },
      ]),
    );
    expect(twice.status).toBe(400);
    expect(twice.body.message).toMatch(/two parts named 'model\.json'/);
  });

  it('a body that is not multipart as it claims: 400 invalid_multipart; past MAX_BODY_BYTES: 413', async () => {
    const broken = await t.http().post('/v1/models').set('content-type', 'multipart/form-data; boundary=xyz').send('--xyz\r\ncontent-disposition: form-data; name="model.json"\r\n\r\n{');
    expect(broken.status).toBe(400);
    expect(broken.body.error).toBe('invalid_multipart');
    const large = await post(
      multipart([
        { name: 'model.json', filename: 'model.json', body: JSON.stringify(manifest) },
        { name: 'model.weights.bin', filename: 'model.weights.bin', body: Buffer.alloc(5000) },
      ]),
    );
    expect(large.status).toBe(413);
    expect(large.body.error).toBe('payload_too_large');
    expect(large.body.message).toMatch(/MAX_BODY_BYTES \(4096 bytes\)/);
  });
});

describe('ownership with API keys', () => {
  const t = useApp({ WORKERS: 1, API_KEYS: `${KEY_A},${KEY_B}` });
  const asA = (r: any) => r.set('authorization', `Bearer ${KEY_A}`);
  const asB = (r: any) => r.set('x-api-key', KEY_B);

  it("another key's model is not found (404), for GET and DELETE; its owner sees and deletes it; no key is 401", async () => {
    const created = await asA(t.http().post('/v1/models')).send({ model: DENSE });
    expect(created.status).toBe(201);
    const { id } = created.body;
    expect((await t.http().post('/v1/models').send({ model: DENSE })).status).toBe(401);
    expect((await t.http().get(`/v1/models/${id}`)).status).toBe(401);
    expect((await asB(t.http().get(`/v1/models/${id}`))).status).toBe(404);
    expect((await asB(t.http().delete(`/v1/models/${id}`))).status).toBe(404);
    expect((await asA(t.http().get(`/v1/models/${id}`))).status).toBe(200);
    // Requests by id: the owner computes with it, another key gets 404 as for an unknown id.
    const { loss, data } = seed.request as any;
    const request = { model: { id }, loss, data: { x: data.x.map((row: number[]) => [...row, 0.5]), y: data.y } };
    expect((await asA(t.http().post('/v1/hessian')).send(request)).status).toBe(200);
    const other = await asB(t.http().post('/v1/hessian')).send(request);
    expect(other.status).toBe(404);
    expect(other.body.message).toContain(`no model ${id}`);
    expect((await asA(t.http().delete(`/v1/models/${id}`))).status).toBe(204);
  });
});

describe('a large body naming a stored model, read on a body thread (BODY_THREAD_BYTES 0)', () => {
  const t = useApp({ WORKERS: 1, BODY_THREAD_BYTES: 0 });

  it('is imported with the stored model once the route resolved its id: the seed answer', async () => {
    const { id } = (await t.http().post('/v1/models').send({ model: seed.request.model })).body;
    const { loss, data } = seed.request as any;
    const res = await t.http().post('/v1/hessian').send({ model: { id }, loss, data });
    expect(res.status).toBe(200);
    expectJsonMatchesFixture(res.body, seed);
    expect((await t.http().post('/v1/jobs').send({ model: { id: randomUUID() }, loss, data })).status).toBe(404);
  });
});

describe('TTL, quota and restarts', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await removeDir(dir);
  });

  it('a model expires RESULT_TTL_SECONDS after its upload (404), and its files go', async () => {
    const t = await startApp({ WORKERS: 1, RESULT_TTL_SECONDS: 1 });
    dirs.push(t.dir);
    try {
      const { id } = (await t.http().post('/v1/models').send({ model: DENSE })).body;
      expect((await t.http().get(`/v1/models/${id}`)).status).toBe(200);
      await sleep(1100);
      expect((await t.http().get(`/v1/models/${id}`)).status).toBe(404);
      for (let i = 0; i < 50 && existsSync(join(t.dir, id)); i++) await sleep(20);
      expect(existsSync(join(t.dir, id))).toBe(false);
    } finally {
      await t.close();
    }
  });

  it('models count against MAX_RESULTS_BYTES: an upload past it is 507; so is a job whose matrix no longer fits beside them', async () => {
    // A model of seeded weights is its graph alone (under 1 KB of JSON); the job's 20x20 matrix takes 1600 + 128 bytes.
    const t = await startApp({ WORKERS: 1, MAX_RESULTS_BYTES: 2600, SMALL_JOB_FLOPS: 0 });
    dirs.push(t.dir);
    const job = {
      model: { inputShape: [4], layers: [{ type: 'dense', units: 4 }] },
      loss: 'meanSquaredError',
      data: { x: [[1, 2, 3, 4]], y: [[0, 1, 0, 1]] },
    };
    try {
      const stored: string[] = [];
      let refused;
      for (let i = 0; i < 10 && !refused; i++) {
        const res = await t.http().post('/v1/models').send({ model: DENSE });
        if (res.status === 201) stored.push(res.body.id);
        else refused = res;
      }
      expect(stored.length).toBeGreaterThan(0);
      expect(refused!.status).toBe(507);
      expect(refused!.body.error).toBe('insufficient_storage');
      expect(refused!.body.message).toMatch(/^the model needs \d+ bytes on disk but \d+ of the MAX_RESULTS_BYTES quota of 2600 bytes are held by other results and stored models/);
      const full = await t.http().post('/v1/jobs').send(job);
      expect(full.status).toBe(507);
      expect(full.body.message).toMatch(/^the result needs 1728 bytes/);
      // Deleting the models frees their share.
      for (const id of stored) expect((await t.http().delete(`/v1/models/${id}`)).status).toBe(204);
      expect((await t.http().post('/v1/jobs').send(job)).status).toBe(202);
    } finally {
      await t.close();
    }
  });

  it('a restart serves stored models again, removes half-written ones, and leaves foreign directories alone', async () => {
    const dir = await freshDir();
    dirs.push(dir);
    const first = await startApp({ WORKERS: 1, RESULTS_DIR: dir });
    const kept = (await first.http().post('/v1/models').send({ model: DENSE })).body;
    await first.close();
    const halfWritten = join(dir, randomUUID());
    await mkdir(halfWritten);
    await writeFile(join(halfWritten, '.hessian-service-model'), '');
    await writeFile(join(halfWritten, 'weights.bin'), Buffer.alloc(8));
    const foreign = join(dir, randomUUID());
    await mkdir(foreign);
    await writeFile(join(foreign, 'model.json'), '{}');

    const second = await startApp({ WORKERS: 1, RESULTS_DIR: dir });
    try {
      const got = await second.http().get(`/v1/models/${kept.id}`);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(kept);
      const entries = await readdir(dir);
      expect(entries).not.toContain(halfWritten.split('/').pop());
      expect(entries).toContain(foreign.split('/').pop());
    } finally {
      await second.close();
    }
  });
});
