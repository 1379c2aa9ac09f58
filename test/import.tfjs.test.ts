/**
 * TF.js models as TF.js itself saves them: built with @tensorflow/tfjs, captured with
 * tf.io.withSaveHandler (with and without the optimizer), sent as model.json + weightData, and
 * compared with the model's own getWeights(), trainableWeights and trainingConfig. This file does not
 * run the engine: @tensorflow/tfjs registers its own backends.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { expectModelOrSpecError, issuesOf, mutate } from './import-helpers.js';
import { mulberry32 } from '../src/compute/initializers.js';
import { importModel, importRequest, parameterNames, parameterTensors, tfjsArtifactsModel } from '../src/schemas/import/index.js';

tf.setBackend('cpu');

async function artifactsOf(model: tf.LayersModel, includeOptimizer = false): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer },
  );
  return saved!;
}

const bytesOf = (data: tf.io.WeightData | undefined): Uint8Array => {
  const buffers = Array.isArray(data) ? data : [data!];
  return Buffer.concat(buffers.map((b) => Buffer.from(b)));
};

/** model.json as tf.io.http / browserFiles write it (weightsManifest), plus weightData in base64. */
async function modelJsonOf(model: tf.LayersModel, includeOptimizer = false) {
  const { weightData, weightSpecs, ...rest } = await artifactsOf(model, includeOptimizer);
  return { ...rest, weightsManifest: [{ paths: ['./model.weights.bin'], weights: weightSpecs! }], weightData: Buffer.from(bytesOf(weightData)).toString('base64') };
}


/** Each of the model's weights by name, as getWeights() gives them. */
function weightsByName(model: tf.LayersModel): Map<string, number[]> {
  const values = model.getWeights();
  return new Map(model.weights.map((w, i) => [w.originalName, Array.from(values[i].dataSync())]));
}

function expectSameWeights(imported: ReturnType<typeof importModel>, model: tf.LayersModel) {
  const expected = weightsByName(model);
  const got = new Map<string, number[]>(imported.model.nodes.flatMap((n) => Object.entries(n.weights).map(([w, v]) => [`${n.name}/${w}`, Array.from(v!)] as const)));
  expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [name, values] of expected) expect(got.get(name), name).toEqual(values);
  expect(parameterNames(imported.model)).toEqual(model.trainableWeights.map((w) => w.originalName));
  let offset = 0;
  expect(parameterTensors(imported.model, imported.shapes)).toEqual(
    model.trainableWeights.map((w) => {
      const size = (w.shape as number[]).reduce((a, b) => a * b, 1);
      offset += size;
      return { name: w.originalName, shape: w.shape, offset: offset - size, size };
    }),
  );
}

function lenet() {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [9, 9, 1], filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelRegularizer: tf.regularizers.l2({ l2: 0.01 }) }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' }));
  model.add(tf.layers.conv2d({ filters: 2, kernelSize: [2, 3], strides: [1, 2], activation: 'tanh' }));
  model.add(tf.layers.averagePooling2d({ poolSize: 2, strides: 1 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dropout({ rate: 0.5 }));
  model.add(tf.layers.dense({ units: 3, activation: 'softmax' }));
  // Non-trivial moving statistics, as a trained model has.
  const bn = model.layers[1] as tf.layers.Layer;
  const [gamma, beta] = bn.getWeights();
  bn.setWeights([gamma.add(0.5), beta.sub(0.25), tf.tensor1d([0.1, -0.2, 0.3]), tf.tensor1d([1.5, 0.5, 2])]);
  return model;
}

function functional() {
  const input = tf.input({ shape: [6], dtype: 'int32' });
  const embedded = tf.layers.embedding({ inputDim: 11, outputDim: 4 }).apply(input) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(embedded) as tf.SymbolicTensor;
  const a = tf.layers.dense({ units: 5, activation: 'elu' }).apply(flat) as tf.SymbolicTensor;
  const b = tf.layers.dense({ units: 5, useBias: false }).apply(a) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
  const product = tf.layers.multiply().apply([sum, b]) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate().apply([product, flat]) as tf.SymbolicTensor;
  const output = tf.layers.dense({ units: 2 }).apply(joined) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output });
}

describe('TF.js models saved by TF.js', () => {
  it('a Sequential CNN: layers, configs, weights = getWeights(), parameters = trainableWeights', async () => {
    const model = lenet();
    const imported = importModel(await modelJsonOf(model), 'model');
    const { nodes, input, output } = imported.model;
    expect(nodes.map((n) => n.name)).toEqual(model.layers.map((l) => l.name));
    expect(nodes.map((n) => n.type)).toEqual(['conv2d', 'batchNormalization', 'maxPooling2d', 'conv2d', 'averagePooling2d', 'flatten', 'dropout', 'dense']);
    expect(nodes.slice(1).map((n) => n.inputs[0])).toEqual(nodes.slice(0, -1).map((n) => n.name));
    expect(input).toEqual({ name: `${model.layers[0].name}_input`, shape: [9, 9, 1], dtype: 'float32' });
    expect(output).toBe(model.layers.at(-1)!.name);
    expect(nodes[0].config).toEqual({ filters: 3, kernelSize: [3, 3], strides: [1, 1], padding: 'same', activation: { type: 'relu' }, useBias: true, kernelL2: 0.01 });
    expect(nodes[1].config).toEqual({ axis: 3, epsilon: 0.001, center: true, scale: true });
    expect(nodes[2].config).toEqual({ poolSize: [2, 2], strides: [2, 2], padding: 'same' });
    expect(nodes[3].config).toMatchObject({ kernelSize: [2, 3], strides: [1, 2], padding: 'valid', activation: { type: 'tanh' } });
    expect(nodes[4].config).toEqual({ poolSize: [2, 2], strides: [1, 1], padding: 'valid' });
    expect(nodes[7].config).toEqual({ units: 3, activation: { type: 'softmax' }, useBias: true, kernelL2: 0 });
    // Every node's output shape is the one TF.js computes.
    for (const layer of model.layers) expect(imported.shapes.get(layer.name), layer.name).toEqual((layer.outputShape as number[]).slice(1));
    expectSameWeights(imported, model);
    expect(imported.loss).toBeUndefined();
  });

  it('a functional model: embedding ids, add, multiply, concatenate; int32 input', async () => {
    const model = functional();
    const imported = importModel(await modelJsonOf(model), 'model');
    const { nodes, input } = imported.model;
    expect(input).toEqual({ name: model.inputLayers[0].name, shape: [6], dtype: 'int32' });
    const byName = new Map(nodes.map((n) => [n.name, n]));
    for (const layer of model.layers.slice(1)) {
      const inbound = (layer as any).inboundNodes[0].inboundLayers.map((l: tf.layers.Layer) => l.name);
      expect(byName.get(layer.name)!.inputs, layer.name).toEqual(inbound);
      expect(imported.shapes.get(layer.name), layer.name).toEqual((layer.outputShape as number[]).slice(1));
    }
    expect(nodes.find((n) => n.type === 'concatenate')!.config).toEqual({ axis: 1 });
    expectSameWeights(imported, model);
  });

  it('a compiled, trained model saved with its optimizer: the loss from trainingConfig, optimizer weights skipped', async () => {
    const model = functional();
    model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
    await model.fit(tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32'), tf.tensor2d([[1, 0]]), { epochs: 1, verbose: 0 });
    const modelJson = await modelJsonOf(model, true);
    expect(modelJson.weightsManifest[0].weights.some((w) => w.group === 'optimizer' && w.dtype === 'int32')).toBe(true);
    const imported = importModel(modelJson, 'model');
    expect(imported.loss).toEqual({ type: 'meanSquaredError' });
    expectSameWeights(imported, model);
    const request = importRequest({ model: modelJson, data: { x: [[0, 1, 2, 3, 4, 10]], y: [[0.5, -1]] } });
    expect(request.loss).toEqual({ type: 'meanSquaredError' });
    expect(Array.from(request.data.x.values)).toEqual([0, 1, 2, 3, 4, 10]);
  });

  it('sparse categorical cross-entropy from the training config checks labels', async () => {
    const model = lenet();
    model.compile({ optimizer: 'sgd', loss: 'sparseCategoricalCrossentropy' });
    const modelJson = await modelJsonOf(model, true);
    const x = [Array.from({ length: 9 }, (_, i) => Array.from({ length: 9 }, (_, j) => [i - j]))];
    expect(importRequest({ model: modelJson, data: { x, y: [2] } }).loss).toEqual({ type: 'sparseCategoricalCrossentropy' });
    expect(issuesOf(() => importRequest({ model: modelJson, data: { x, y: [3] } }))).toContainEqual({ path: 'data.y[0]', message: expect.stringMatching(/class label in \[0, 2\]/) });
    // A loss in the request wins over the model's.
    expect(importRequest({ model: modelJson, loss: 'categoricalCrossentropy', data: { x, y: [[0, 0, 1]] } }).loss).toEqual({ type: 'categoricalCrossentropy' });
  });

  it('a loss compiled as a function: the request must name one', async () => {
    const model = lenet();
    model.compile({ optimizer: 'sgd', loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.meanSquaredError(yTrue, yPred) });
    const modelJson = await modelJsonOf(model, true);
    expect(modelJson.trainingConfig!.loss).toEqual({});
    const x = [Array.from({ length: 9 }, () => Array.from({ length: 9 }, () => [1]))];
    expect(issuesOf(() => importRequest({ model: modelJson, data: { x, y: [[0, 0, 1]] } }))).toEqual([
      { path: 'model.trainingConfig.loss', message: expect.stringMatching(/compiled with a loss function, which a saved model cannot carry; send `loss`/) },
    ]);
    expect(importRequest({ model: modelJson, loss: 'mse', data: { x, y: [[0, 0, 1]] } }).loss).toEqual({ type: 'meanSquaredError' });
    const uncompiled = await modelJsonOf(lenet());
    expect(issuesOf(() => importRequest({ model: uncompiled, data: { x, y: [[0, 0, 1]] } }))).toEqual([{ path: 'loss', message: expect.stringMatching(/^loss is required/) }]);
  });

  it('the multipart form: model.json and the weight file bytes', async () => {
    const model = lenet();
    const { weightData, weightSpecs, ...rest } = await artifactsOf(model);
    const modelJson = { ...rest, weightsManifest: [{ paths: ['./model.weights.bin'], weights: weightSpecs }] };
    const imported = tfjsArtifactsModel(modelJson, bytesOf(weightData));
    expectSameWeights(imported, model);
    expect(issuesOf(() => tfjsArtifactsModel(modelJson, bytesOf(weightData).slice(4)))).toEqual([
      { path: 'model.json', message: expect.stringMatching(/the weight file holds \d+ bytes but the manifest's 10 weights take \d+/) },
    ]);
  });

  it('a TF.js topology with getWeights() (TF.js order: trainable weights first)', async () => {
    const model = lenet();
    const topology = model.toJSON(null, false) as object;
    const weights = model.getWeights().map((w) => w.arraySync());
    const imported = importModel({ ...topology, weights }, 'model');
    expectSameWeights(imported, model);
  });

  it("tensorflowjs_converter's wrapping of a Keras model: modelTopology.model_config and training_config", async () => {
    const model = lenet();
    const modelJson = await modelJsonOf(model);
    const { class_name: _c, config: _cfg, ...rest } = modelJson.modelTopology as any;
    const converted = {
      ...modelJson,
      format: 'layers-model',
      generatedBy: 'keras v2.15.0',
      convertedBy: 'TensorFlow.js Converter v4.22.0',
      modelTopology: { ...rest, keras_version: '2.15.0', backend: 'tensorflow', model_config: { class_name: 'Sequential', config: (modelJson.modelTopology as any).config }, training_config: { loss: 'categorical_crossentropy', metrics: null } },
    };
    const imported = importModel(converted, 'model');
    expectSameWeights(imported, model);
    expect(imported.loss).toEqual({ type: 'categoricalCrossentropy' });
    (converted.modelTopology.model_config.config as any).layers[0].config.padding = 'causal';
    expect(issuesOf(() => importModel(converted, 'model')).map((i) => i.path)).toEqual(['model.modelTopology.model_config.config.layers[0].config.padding']);
  });

  it('a frozen layer: its weights are constants', async () => {
    const model = lenet();
    model.layers[0].trainable = false;
    const imported = importModel(await modelJsonOf(model), 'model');
    expect(imported.model.nodes[0].trainable).toBe(false);
    expectSameWeights(imported, model);
  });
});

describe('TF.js models this service refuses, by field', () => {
  const shapes = { inputShape: [8, 8, 1] };
  const refusals: [string, () => tf.LayersModel, RegExp][] = [
    ['an LSTM', () => tf.sequential({ layers: [tf.layers.lstm({ units: 2, inputShape: [3, 4] })] }), /is a "LSTM", which is not supported; supported layers: Dense, Conv2D/],
    ['a Conv1D', () => tf.sequential({ layers: [tf.layers.conv1d({ filters: 2, kernelSize: 2, inputShape: [5, 1] }), tf.layers.flatten()] }), /"Conv1D", which is not supported/],
    ['a dilation', () => tf.sequential({ layers: [tf.layers.conv2d({ ...shapes, filters: 1, kernelSize: 2, dilationRate: 2 }), tf.layers.flatten()] }), /dilation_rate: layer 'conv2d_\w+' \(Conv2D\) has dilation_rate "\[2,2\]", which is not supported; only a dilation rate of 1/],
    ['channels first', () => tf.sequential({ layers: [tf.layers.conv2d({ ...shapes, filters: 1, kernelSize: 2, dataFormat: 'channelsFirst' }), tf.layers.flatten()] }), /data_format: layer .* has data_format "channels_first", which is not supported; only "channels_last"/],
    ['a bias regularizer', () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1, biasRegularizer: 'l1l2' })] }), /bias_regularizer: layer .* \(Dense\) has bias_regularizer/],
    ['an L1 kernel regularizer', () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1, kernelRegularizer: tf.regularizers.l1({ l1: 0.1 }) })] }), /kernel_regularizer .* only an L2 regularizer/],
    ['an unsupported activation', () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1, activation: 'relu6' })] }), /activation "relu6", which is not supported; accepted: linear, relu/],
    ['mask_zero', () => tf.sequential({ layers: [tf.layers.embedding({ inputDim: 3, outputDim: 2, inputLength: 4, maskZero: true }), tf.layers.flatten()] }), /mask_zero: layer .* has mask_zero true, which is not supported/],
    [
      'two inputs',
      () => {
        const a = tf.input({ shape: [2] });
        const b = tf.input({ shape: [2] });
        return tf.model({ inputs: [a, b], outputs: tf.layers.add().apply([a, b]) as tf.SymbolicTensor });
      },
      /second input .* only models with one input/,
    ],
    [
      'a shared layer',
      () => {
        const a = tf.input({ shape: [2] });
        const dense = tf.layers.dense({ units: 2 });
        return tf.model({ inputs: a, outputs: dense.apply(dense.apply(a)) as tf.SymbolicTensor });
      },
      /is called 2 times: a layer called more than once \(shared weights\) is not supported/,
    ],
  ];
  it.each(refusals)('%s', async (_name, build, message) => {
    const modelJson = await modelJsonOf(build());
    const issues = issuesOf(() => importModel(modelJson, 'model'));
    expect(issues.map((i) => i.message)).toContainEqual(expect.stringMatching(message));
    for (const issue of issues) expect(issue.message.startsWith(issue.path)).toBe(true);
    expect(issues.every((i) => i.path.startsWith('model.modelTopology.config.layers') || i.path.startsWith('model.modelTopology.config.input_layers'))).toBe(true);
  });

  it('quantized or non-float weights, a missing weight, a graph model, bad weightData', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 2 })] });
    const good = await modelJsonOf(model);
    const quantized = structuredClone(good);
    (quantized.weightsManifest[0].weights[0] as any).quantization = { dtype: 'uint8', scale: 1, min: 0 };
    quantized.weightData = Buffer.from(new Uint8Array(4 + 8)).toString('base64');
    expect(issuesOf(() => importModel(quantized, 'model'))).toEqual([
      { path: 'model.weightsManifest[0].weights[0]', message: expect.stringMatching(/weight 'dense_\w+\/kernel' is quantized \(uint8\); weights must be float32/) },
    ]);
    const missing = structuredClone(good);
    missing.weightsManifest[0].weights.pop();
    missing.weightData = Buffer.from(Buffer.from(good.weightData, 'base64').subarray(0, 16)).toString('base64');
    expect(issuesOf(() => importModel(missing, 'model'))).toEqual([{ path: 'model.weightsManifest', message: expect.stringMatching(/has no weight 'dense_\w+\/bias'/) }]);
    expect(issuesOf(() => importModel({ ...good, format: 'graph-model' }, 'model'))[0].message).toMatch(/graph model has no layers/);
    expect(issuesOf(() => importModel({ ...good, weightData: 'not base64!' }, 'model'))).toEqual([{ path: 'model.weightData', message: expect.stringMatching(/must be base64/) }]);
    const wrongShape = structuredClone(good);
    wrongShape.weightsManifest[0].weights[0].shape = [1, 4];
    expect(issuesOf(() => importModel(wrongShape, 'model'))).toEqual([
      { path: 'model.weightsManifest[0].weights[0]', message: expect.stringMatching(/is \[1, 4\] but layer 'dense_\w+' needs \[2, 2\]/) },
    ]);
  });
});

describe('mutated TF.js model.json never crashes the importer', () => {
  it.each([
    ['lenet', lenet],
    ['functional', functional],
  ])('%s: 200 mutations answer a model or a SpecError', async (name, build) => {
    const modelJson = await modelJsonOf(build());
    const random = mulberry32(name.length + 101);
    for (let i = 0; i < 200; i++) expectModelOrSpecError(() => importModel(mutate(modelJson, random), 'model'));
  });
});
