/**
 * Our JSON wire format through the importer: today's dense stacks give the same model, data and
 * messages as the schema the routes validate with (src/schemas/model.ts), and the layer types of
 * issue #9 give the graph, weights and refusals the wire format describes.
 */
import { describe, expect, it } from 'vitest';
import { issuesOf } from './import-helpers.js';
import { importModel, importRequest, parameterTensors } from '../src/schemas/import/index.js';
import { parseRequest } from '../src/schemas/model.js';
import { encodeTensor } from '../src/schemas/tensor.js';
import { fixtures } from './helpers.js';

const clone = <T>(value: T): T => structuredClone(value);


/** Flat values of nested arrays, as an independent reading of a row-major layout. */
const flat = (value: unknown): number[] => (Array.isArray(value) ? value.flatMap(flat) : [value as number]);

describe('dense stacks: the same request as the current schema', () => {
  it.each(fixtures().map((c) => [c.name, c.request] as const))('%s', (_name, request) => {
    const legacy = parseRequest(clone(request));
    const imported = importRequest(clone(request));
    expect(imported.model.nodes.map((n) => n.type)).toEqual(legacy.model.layers.map(() => 'dense'));
    expect(imported.model.input).toEqual({ name: 'input', shape: legacy.model.inputShape, dtype: 'float32' });
    expect(imported.model.seed).toBe(legacy.model.seed);
    legacy.model.layers.forEach((layer, l) => {
      const node = imported.model.nodes[l];
      expect(node.name).toBe(layer.name ?? `dense_${l + 1}`);
      expect(node.inputs).toEqual([l === 0 ? 'input' : imported.model.nodes[l - 1].name]);
      if (node.type !== 'dense') throw new Error('not dense');
      const activation = typeof layer.activation === 'string' ? { type: layer.activation } : layer.activation;
      expect(node.config.units).toBe(layer.units);
      expect(node.config.useBias).toBe(layer.useBias);
      expect(node.config.kernelL2).toBe(layer.kernelRegularizer?.l2 ?? 0);
      expect(node.config.activation.alpha).toBe(activation.alpha);
      expect(node.weights.kernel ? Array.from(node.weights.kernel) : undefined).toEqual(layer.kernel ? Array.from(layer.kernel.values) : undefined);
      expect(node.weights.bias ? Array.from(node.weights.bias) : undefined).toEqual(layer.bias ? Array.from(layer.bias) : undefined);
    });
    expect(imported.model.output).toBe(imported.model.nodes.at(-1)!.name);
    expect(imported.data.x.shape).toEqual([legacy.data.x.rows, legacy.data.x.columns]);
    expect(Array.from(imported.data.x.values)).toEqual(Array.from(legacy.data.x.values));
    expect(imported.data.y).toEqual(legacy.data.y);
    expect(imported.wrt).toEqual(legacy.wrt);
  });

  const seed = fixtures().find((c) => c.name === 'seed_2x2_linear_mse')!.request as any;
  const twoLayers = fixtures().find((c) => c.request.model.layers.length === 2 && c.request.model.layers.every((l: any) => l.kernel))!.request as any;

  // The messages the API tests (test/api.errors.test.ts) expect from today's schema.
  const cases: [string, (b: any) => unknown, string, RegExp][] = [
    ['kernel rows vs the input', (b) => ((b.model.inputShape = [3]), (b.data.x = b.data.x.map((r: number[]) => [...r, 0]))), 'model.layers[0].kernel', /^model\.layers\[0\]\.kernel has 2 rows but the input has 3 features$/],
    ['kernel row entries', (b) => (b.model.layers[0].kernel[1] = [1, 2, 3]), 'model.layers[0].kernel[1]', /^model\.layers\[0\]\.kernel\[1\] has 3 entries but the layer has 2 units$/],
    ['bias length', (b) => ((b.model.layers[0].useBias = true), (b.model.layers[0].bias = [1, 2, 3])), 'model.layers[0].bias', /model\.layers\[0\]\.bias has 3 entries but the layer has 2 units/],
    ['bias without useBias', (b) => (b.model.layers[0].bias = [1, 2]), 'model.layers[0].bias', /useBias is false/],
    ['unknown activation', (b) => (b.model.layers[0].activation = 'sparkle'), 'model.layers[0].activation', /"sparkle" is not a known activation/],
    ['unknown layer type', (b) => (b.model.layers[0].type = 'lstm'), 'model.layers[0].type', /"lstm" is not a supported layer type; accepted: dense, conv2d, /],
    ['zero units', (b) => (b.model.layers[0].units = 0), 'model.layers[0].units', /model\.layers\[0\]\.units/],
    ['unknown layer field', (b) => (b.model.layers[0].kernal = [[1]]), 'model.layers[0]', /kernal/],
    ['unknown loss', (b) => (b.loss = 'hinge'), 'loss', /"hinge" is not a known loss/],
    ['fromLogits on mse', (b) => (b.loss = { type: 'meanSquaredError', fromLogits: true }), 'loss.fromLogits', /^loss\.fromLogits does not apply to meanSquaredError$/],
    ['negative delta', (b) => (b.loss = { type: 'huber', delta: -1 }), 'loss.delta', /loss\.delta/],
    ['no data', (b) => delete b.data, 'data', /data/],
    ['a row of the wrong width', (b) => (b.data.x[1] = [1, 2, 3]), 'data.x[1]', /^data\.x\[1\] has 3 features but model\.inputShape is \[2\]$/],
    ['a string in x', (b) => (b.data.x[0][1] = 'two'), 'data.x[0][1]', /data\.x\[0\]\[1\] is "two"; expected a number/],
    ['Infinity in x', (b) => (b.data.x[0][0] = Infinity), 'data.x[0][0]', /finite/],
    ['fewer targets', (b) => b.data.y.pop(), 'data.y', /data\.y has 2 rows but data\.x has 3/],
    ['a target of the wrong width', (b) => (b.data.y[2] = [1, 1, 1]), 'data.y[2]', /data\.y\[2\] must have 2 entries/],
    ['unknown wrt', (b) => (b.wrt = ['dense_1/bias']), 'wrt[0]', /wrt\[0\] 'dense_1\/bias' is not a parameter tensor; the model has dense_1\/kernel/],
    ['wrt twice', (b) => (b.wrt = ['dense_1/kernel', 'dense_1/kernel']), 'wrt[1]', /listed twice/],
    ['unknown top-level field', (b) => (b.optimizer = 'adam'), '', /optimizer/],
    ['no layers', (b) => (b.model.layers = []), 'model.layers', /model\.layers/],
  ];
  it.each(cases)('%s', (_name, edit, path, message) => {
    const body = clone(seed);
    edit(body);
    const issues = issuesOf(() => importRequest(body));
    expect(issues.map((i) => i.path)).toContain(path);
    expect(issues.find((i) => i.path === path)!.message).toMatch(message);
  });

  it('a kernel whose rows do not match the previous layer names its units', () => {
    const body = clone(twoLayers);
    body.model.layers[1].kernel.pop();
    const units = body.model.layers[0].units;
    expect(issuesOf(() => importRequest(body))).toContainEqual({
      path: 'model.layers[1].kernel',
      message: `model.layers[1].kernel has ${units - 1} rows but the previous layer has ${units} units`,
    });
  });

  it('two layers with the same name', () => {
    const body = clone(twoLayers);
    body.model.layers[0].name = 'same';
    body.model.layers[1].name = 'same';
    expect(issuesOf(() => importRequest(body))).toContainEqual({ path: 'model.layers[1].name', message: "model.layers[1].name 'same' is used by an earlier layer" });
  });

  it('class labels out of range', () => {
    const body = clone(fixtures().find((c) => c.name === 'loss_sparse_cce_logits')!.request as any);
    body.data.y[3] = 3;
    expect(issuesOf(() => importRequest(body)).map((i) => i.message)).toContainEqual(expect.stringMatching(/^data\.y\[3\] must be an integer class label in \[0, 2\]/));
  });

  it('a request without loss names the field, unless the model itself could not be read', () => {
    const body = clone(seed);
    delete body.loss;
    expect(issuesOf(() => importRequest(body))).toContainEqual({ path: 'loss', message: expect.stringMatching(/^loss is required/) });
    body.model.layers[0].units = 0;
    expect(issuesOf(() => importRequest(body)).map((i) => i.path)).toEqual(['model.layers[0].units']);
  });
});

/** A small CNN in our JSON: conv (same, strides 2) -> BN -> max pool -> flatten -> dropout -> dense. */
function cnn() {
  const conv = Array.from({ length: 3 * 3 * 2 * 4 }, (_, i) => Math.sin(i));
  const nest = (values: number[], shape: number[]): unknown => {
    const step = values.length / shape[0];
    return shape.length === 1 ? values : Array.from({ length: shape[0] }, (_, i) => nest(values.slice(i * step, (i + 1) * step), shape.slice(1)));
  };
  return {
    conv,
    kernel: nest(conv, [3, 3, 2, 4]),
    model: {
      inputShape: [7, 7, 2],
      seed: 5,
      layers: [
        { type: 'conv2d', filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernel: nest(conv, [3, 3, 2, 4]), kernelRegularizer: { l2: 0.01 } },
        { type: 'batchNormalization', movingVariance: [1, 2, 3, 4] },
        { type: 'maxPooling2d', poolSize: [2, 2] },
        { type: 'flatten' },
        { type: 'dropout', rate: 0.25 },
        { type: 'dense', units: 3, activation: 'softmax', kernel: encodeTensor(Array.from({ length: 16 * 3 }, (_, i) => i / 10), [16, 3]) },
      ],
    },
  };
}

describe('the layers of issue #9 in our JSON', () => {
  // graphs.json: the wire format as the reference generator reads it (test/fixtures/graph_reference.py, no shared code).
  it.each(fixtures('graphs.json').map((c) => [c.name, c] as const))('graphs.json %s: the reference\'s parameter map', (_name, fixture) => {
    const request = importRequest(clone(fixture.request));
    const imported = importModel(clone(fixture.request.model), 'model');
    const map = parameterTensors(imported.model, imported.shapes);
    const wrt = request.wrt ?? map.map((t) => t.name);
    let offset = 0;
    const selected = wrt.map((name) => {
      const { shape, size } = map.find((t) => t.name === name)!;
      offset += size;
      return { name, shape, offset: offset - size, size };
    });
    expect(selected).toEqual(fixture.expected.parameters);
    expect(request.data.x.shape[0]).toBe(request.data.y.rows);
  });

  it('a CNN: nodes, configs, weights in their own layout, shapes', () => {
    const { model, conv } = cnn();
    const { model: graph, shapes } = importModel(model, 'model');
    expect(graph.nodes.map((n) => [n.name, n.type, n.inputs])).toEqual([
      ['conv2d_1', 'conv2d', ['input']],
      ['batchNormalization_2', 'batchNormalization', ['conv2d_1']],
      ['maxPooling2d_3', 'maxPooling2d', ['batchNormalization_2']],
      ['flatten_4', 'flatten', ['maxPooling2d_3']],
      ['dropout_5', 'dropout', ['flatten_4']],
      ['dense_6', 'dense', ['dropout_5']],
    ]);
    expect(graph.nodes[0].config).toEqual({ filters: 4, kernelSize: [3, 3], strides: [2, 2], padding: 'same', activation: { type: 'relu' }, useBias: true, kernelL2: 0.01 });
    expect(graph.nodes[1].config).toEqual({ axis: 3, epsilon: 0.001, center: true, scale: true });
    expect(graph.nodes[2].config).toEqual({ poolSize: [2, 2], strides: [2, 2], padding: 'valid' });
    expect(Array.from(graph.nodes[0].weights.kernel!)).toEqual(Array.from(Float32Array.from(conv)));
    expect(graph.nodes[0].weights.bias).toBeUndefined();
    expect(Array.from(graph.nodes[1].weights.moving_variance!)).toEqual([1, 2, 3, 4]);
    expect(graph.nodes[5].weights.kernel!.length).toBe(48);
    // same padding, stride 2: ceil(7/2) = 4; pool 2: 2; flatten 2*2*4
    expect(Object.fromEntries(shapes)).toEqual({ input: [7, 7, 2], conv2d_1: [4, 4, 4], batchNormalization_2: [4, 4, 4], maxPooling2d_3: [2, 2, 4], flatten_4: [16], dropout_5: [16], dense_6: [3] });
    expect(graph.input).toEqual({ name: 'input', shape: [7, 7, 2], dtype: 'float32' });
  });

  it('images as nested arrays or binary, labels', () => {
    const { model } = cnn();
    const x = Array.from({ length: 2 }, (_, b) => Array.from({ length: 7 }, (_, i) => Array.from({ length: 7 }, (_, j) => [b + i, j])));
    const request = importRequest({ model, loss: 'sparse_categorical_crossentropy', data: { x, y: [2, 0] } });
    expect(request.loss).toEqual({ type: 'sparseCategoricalCrossentropy' });
    expect(request.data.x.shape).toEqual([2, 7, 7, 2]);
    expect(Array.from(request.data.x.values)).toEqual(flat(x));
    expect(request.data.y).toEqual({ rows: 2, columns: 1, values: Float32Array.from([2, 0]) });
    const binary = importRequest({ model, loss: 'sparseCategoricalCrossentropy', data: { x: encodeTensor(flat(x), [2, 7, 7, 2]), y: encodeTensor([2, 0], [2], 'int32') } });
    expect(binary.data.x).toEqual(request.data.x);
    expect(binary.data.y).toEqual(request.data.y);
    const wrongShape = issuesOf(() => importRequest({ model, loss: 'mse', data: { x: encodeTensor(flat(x), [2, 7, 14]), y: [[1, 0, 0], [0, 1, 0]] } }));
    expect(wrongShape).toContainEqual({ path: 'data.x', message: 'data.x is float32 [2, 7, 14]; it must be float32 [batch, 7, 7, 2] with batch >= 1 (the model input shape is [7, 7, 2])' });
    const badRow = clone(x);
    badRow[1][3] = badRow[1][3].slice(1);
    expect(issuesOf(() => importRequest({ model, loss: 'mse', data: { x: badRow, y: [[1, 0, 0], [0, 1, 0]] } }))[0].path).toBe('data.x[1][3]');
  });

  it('a functional graph: embedding ids, add, concatenate, multiply, names as inputs', () => {
    const model = {
      inputShape: [4],
      inputName: 'tokens',
      layers: [
        { type: 'embedding', name: 'embed', inputDim: 10, outputDim: 3 },
        { type: 'flatten', name: 'flat' },
        { type: 'dense', name: 'a', units: 5, activation: 'tanh' },
        { type: 'dense', name: 'b', units: 5, inputs: ['flat'] },
        { type: 'add', name: 'sum', inputs: ['a', 'b'] },
        { type: 'multiply', name: 'product', inputs: ['a', 'sum'] },
        { type: 'concatenate', name: 'both', inputs: ['product', 'flat'] },
        { type: 'dense', name: 'out', units: 2 },
      ],
    };
    const request = importRequest({ model, loss: 'mse', data: { x: [[0, 1, 2, 9], [3, 3, 3, 3]], y: [[0, 1], [1, 0]] } });
    expect(request.model.input).toEqual({ name: 'tokens', shape: [4], dtype: 'int32' });
    expect(request.data.x.values).toEqual(Int32Array.from([0, 1, 2, 9, 3, 3, 3, 3]));
    expect(request.model.nodes.find((n) => n.name === 'both')!.config).toEqual({ axis: 1 });
    const { shapes } = importModel(model, 'model');
    expect(shapes.get('both')).toEqual([17]);
    const outOfRange = issuesOf(() => importRequest({ model, loss: 'mse', data: { x: [[0, 1, 2, 10]], y: [[0, 1]] } }));
    expect(outOfRange).toEqual([{ path: 'data.x', message: expect.stringMatching(/^data\.x value 3 \(row-major\) is 10; .* integers in \[0, 9\]/) }]);
  });

  it('trainable: false and layer names make the parameter names', () => {
    const request = importRequest({
      model: { inputShape: [2], layers: [{ type: 'dense', units: 2, trainable: false }, { type: 'batchNormalization', name: 'bn' }, { type: 'dense', units: 1 }] },
      loss: 'mse',
      data: { x: [[1, 2]], y: [[1]] },
      wrt: ['bn/beta', 'dense_3/kernel'],
    });
    expect(request.model.nodes.map((n) => n.trainable)).toEqual([false, true, true]);
    expect(request.wrt).toEqual(['bn/beta', 'dense_3/kernel']);
    expect(issuesOf(() => importRequest({ model: request.model && { inputShape: [2], layers: [{ type: 'dense', units: 2, trainable: false }, { type: 'dense', units: 1 }] }, loss: 'mse', data: { x: [[1, 2]], y: [[1]] }, wrt: ['dense_1/kernel'] }))).toEqual([
      { path: 'wrt[0]', message: "wrt[0] 'dense_1/kernel' is not a parameter tensor; the model has dense_2/kernel, dense_2/bias" },
    ]);
  });

  const refusals: [string, unknown, string, RegExp][] = [
    ['causal padding', { inputShape: [4, 4, 1], layers: [{ type: 'conv2d', filters: 1, kernelSize: 2, padding: 'causal' }, { type: 'flatten' }] }, 'model.layers[0].padding', /"causal"/],
    ['channels first', { inputShape: [4, 4, 1], layers: [{ type: 'conv2d', filters: 1, kernelSize: 2, dataFormat: 'channelsFirst' }, { type: 'flatten' }] }, 'model.layers[0].dataFormat', /only channelsLast/],
    ['a dilation', { inputShape: [4, 4, 1], layers: [{ type: 'conv2d', filters: 1, kernelSize: 2, dilationRate: 2 }, { type: 'flatten' }] }, 'model.layers[0].dilationRate', /dilation/],
    ['a BN axis other than the last', { inputShape: [4, 4, 1], layers: [{ type: 'batchNormalization', axis: 1 }, { type: 'flatten' }] }, 'model.layers[0].axis', /only the last axis/],
    ['a kernel larger than its valid input', { inputShape: [2, 2, 1], layers: [{ type: 'conv2d', filters: 1, kernelSize: 3 }, { type: 'flatten' }] }, 'model.layers[0]', /layer 'conv2d_1' \(conv2d\): kernelSize \[3,3\] with padding 'valid' does not fit its input of 2x2; its input is \[batch, 2, 2, 1\]/],
    ['conv2d on a vector', { inputShape: [4], layers: [{ type: 'conv2d', filters: 1, kernelSize: 1 }, { type: 'flatten' }] }, 'model.layers[0]', /needs an input of shape \[height, width, channels\] per example/],
    ['a conv kernel of the wrong shape', { inputShape: [4, 4, 1], layers: [{ type: 'conv2d', filters: 1, kernelSize: 2, kernel: [[[[1]], [[1]]]] }, { type: 'flatten' }] }, 'model.layers[0].kernel', /kernel has 1 entries but layer 'conv2d_1' kernel needs 2 on axis 0 \(shape \[2, 2, 1, 1\]\)/],
    ['add of unequal shapes', { inputShape: [3], layers: [{ type: 'dense', units: 2 }, { type: 'add', inputs: ['dense_1', 'input'] }] }, 'model.layers[1]', /equal shape/],
    ['an unknown input name', { inputShape: [3], layers: [{ type: 'dense', units: 2, inputs: ['nowhere'] }] }, 'model.layers[0].inputs[0]', /'nowhere' is not a layer of the model; it has input, dense_1/],
    ['a layer off the path to the output', { inputShape: [3], layers: [{ type: 'dense', units: 2 }, { type: 'dense', units: 1, inputs: ['input'] }] }, 'model.layers[0]', /does not lead to the output/],
    ['a rank-3 output', { inputShape: [2, 3], layers: [{ type: 'dense', units: 2 }] }, 'model.layers[0]', /the model output 'dense_1' is \[batch, 2, 2\]/],
    ['a reshape that does not fit', { inputShape: [6], layers: [{ type: 'reshape', targetShape: [4, -1] }, { type: 'flatten' }] }, 'model.layers[0]', /targetShape \[4,-1\] does not fit its input of shape \[6\]/],
    ['two -1 in a reshape', { inputShape: [6], layers: [{ type: 'reshape', targetShape: [-1, -1] }, { type: 'flatten' }] }, 'model.layers[0].targetShape', /at most one/],
    ['an embedding on float input', { inputShape: [3], inputDtype: 'float32', layers: [{ type: 'embedding', inputDim: 3, outputDim: 2 }, { type: 'flatten' }] }, 'model.inputDtype', /must be int32/],
    ['an embedding after a dense', { inputShape: [3], layers: [{ type: 'dense', units: 2 }, { type: 'embedding', inputDim: 3, outputDim: 2 }, { type: 'flatten' }] }, 'model.layers[1].inputs', /only the model input/],
    ['a binary kernel of the wrong shape', { inputShape: [3], layers: [{ type: 'dense', units: 2, kernel: encodeTensor([1, 2, 3, 4], [2, 2]) }] }, 'model.layers[0].kernel', /is float32 \[2, 2\] but layer 'dense_1' kernel is float32 \[3, 2\]/],
    ['an int32 binary kernel', { inputShape: [2], layers: [{ type: 'dense', units: 2, kernel: encodeTensor([1, 2, 3, 4], [2, 2], 'int32') }] }, 'model.layers[0].kernel', /is int32 \[2, 2\]/],
    ['a string in a kernel', { inputShape: [2], layers: [{ type: 'dense', units: 1, kernel: [[1], ['x']] }] }, 'model.layers[0].kernel[1][0]', /is "x"; expected a number/],
    ['not a model', [1, 2], 'model', /must be a model object/],
    ['an unknown format', { nodes: [] }, 'model', /not a model this service reads/],
  ];
  it.each(refusals)('refuses %s with its field', (_name, model, path, message) => {
    const issues = issuesOf(() => importModel(model, 'model'));
    expect(issues.map((i) => i.path)).toContain(path);
    expect(issues.find((i) => i.path === path)!.message).toMatch(message);
  });
});

describe('a model as the whole body (POST /v1/models), path ""', () => {
  it('names fields from the top', () => {
    expect(issuesOf(() => importModel({ inputShape: [2], layers: [{ type: 'dense', units: 0 }] }, ''))).toEqual([
      { path: 'layers[0].units', message: expect.stringMatching(/^layers\[0\]\.units: /) },
    ]);
    expect(issuesOf(() => importModel('text', ''))).toEqual([{ path: '', message: expect.stringMatching(/^the model must be a model object/) }]);
  });
});
