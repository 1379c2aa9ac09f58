/**
 * Keras models as Python sends them: json.loads(model.to_json()) plus model.get_weights(), in
 * Keras 3's format (module, registered_name, build_config, compile_config, inbound_nodes with args
 * and __keras_tensor__) and Keras 2's (keras_version, nested-list inbound_nodes, batch_input_shape).
 * The layers below are written as Keras 3.15 and Keras 2.15 write them (keys and nesting copied from
 * their to_json output); the real models with float64 references are test/fixtures/keras.
 */
import { describe, expect, it } from 'vitest';
import { issuesOf } from './import-helpers.js';
import { importModel, importRequest, parameterNames, parameterTensors } from '../src/schemas/import/index.js';
import { encodeTensor } from '../src/schemas/tensor.js';
import { kerasFixtures } from './helpers.js';


const policy = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null };
const initializer = (name: string) => ({ module: 'keras.initializers', class_name: name, config: {}, registered_name: null });
const tensor = (from: string, shape: (number | null)[]) => ({ class_name: '__keras_tensor__', config: { shape, dtype: 'float32', keras_history: [from, 0, 0] } });

/** A Keras 3 layer entry of a functional model's config.layers. */
function k3(className: string, config: Record<string, unknown>, inputs: string[] | null, shape: (number | null)[] = [null, 4]) {
  const args = inputs === null ? [] : inputs.length === 1 ? [tensor(inputs[0], shape)] : [inputs.map((i) => tensor(i, shape))];
  return {
    module: 'keras.layers',
    class_name: className,
    config: { trainable: true, dtype: policy, ...config },
    registered_name: null,
    build_config: { input_shape: shape },
    name: config.name,
    inbound_nodes: inputs === null ? [] : [{ args, kwargs: {} }],
  };
}

const dense3 = (name: string, units: number, extra: Record<string, unknown> = {}) => ({
  name,
  units,
  activation: 'linear',
  use_bias: true,
  kernel_initializer: initializer('GlorotUniform'),
  bias_initializer: initializer('Zeros'),
  kernel_regularizer: null,
  bias_regularizer: null,
  kernel_constraint: null,
  bias_constraint: null,
  quantization_config: null,
  ...extra,
});

const input3 = (name: string, batchShape: (number | null)[]) => ({
  module: 'keras.layers',
  class_name: 'InputLayer',
  config: { batch_shape: batchShape, dtype: 'float32', sparse: false, ragged: false, name, optional: false },
  registered_name: null,
  name,
  inbound_nodes: [],
});

/** A Keras 3 functional model: x -> dense a (tanh, l2) -> dense b; add(x, b) -> BN (frozen) -> dense out. */
function functional3(compileLoss: unknown = 'mse') {
  return {
    module: 'keras.src.models.functional',
    class_name: 'Functional',
    config: {
      name: 'functional',
      trainable: true,
      layers: [
        input3('x', [null, 4]),
        k3('Dense', dense3('a', 4, { activation: 'tanh', kernel_regularizer: { module: 'keras.regularizers', class_name: 'L2', config: { l2: 0.02 }, registered_name: null } }), ['x']),
        k3('Dense', dense3('b', 4), ['a']),
        k3('Add', { name: 'add' }, ['x', 'b']),
        k3('BatchNormalization', { name: 'bn', trainable: false, axis: -1, momentum: 0.99, epsilon: 0.001, center: true, scale: true, beta_initializer: initializer('Zeros'), synchronized: false, renorm: false, renorm_clipping: null, renorm_momentum: 0.99 }, ['add']),
        k3('Dense', dense3('out', 2, { activation: 'softmax' }), ['bn']),
      ],
      input_layers: [['x', 0, 0]],
      output_layers: [['out', 0, 0]],
    },
    registered_name: 'Functional',
    build_config: { input_shape: null },
    compile_config: { optimizer: { module: 'keras.optimizers', class_name: 'SGD', config: {}, registered_name: null }, loss: compileLoss, loss_weights: null, metrics: null, weighted_metrics: null, run_eagerly: false, steps_per_execution: 1, jit_compile: false },
  };
}

const ramp = (n: number, start = 0) => Array.from({ length: n }, (_, i) => Math.round((start + i * 0.1) * 1e6) / 1e6);
const matrix = (rows: number, columns: number, start = 0) => Array.from({ length: rows }, (_, r) => ramp(columns, start + r));

/** model.get_weights() of functional3: a kernel, a bias, b kernel, b bias, bn gamma, beta, moving mean, variance, out kernel, bias. */
const weights3 = () => [matrix(4, 4), ramp(4, 1), matrix(4, 4, 2), ramp(4, 3), ramp(4, 4), ramp(4, 5), ramp(4, 6), ramp(4, 7), matrix(4, 2, 8), ramp(2, 9)];

describe('Keras 3 to_json with get_weights()', () => {
  // Real Keras 3.15 models (test/fixtures/keras, made by generate_keras.py).
  it('the fixtures are there', () => expect(kerasFixtures().length).toBeGreaterThanOrEqual(4));
  it.each(kerasFixtures().map((f) => [f.name, f] as const))('%s: the parameter map of trainable_weights, the weights, the compiled loss', (_name, fixture) => {
    const model = { ...fixture.to_json, weights: fixture.weights };
    const imported = importModel(model, 'model');
    expect(parameterTensors(imported.model, imported.shapes)).toEqual(fixture.expected.parameters);
    // get_weights() order: every weight of every layer, in layer order.
    const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : [v as number]);
    const got = imported.model.nodes.flatMap((n) => Object.values(n.weights).map((w) => Array.from(w!)));
    expect(got).toEqual(fixture.weights.map((w) => Array.from(Float32Array.from(flat(w)))));
    const request = importRequest({ model, data: fixture.data });
    expect(request.loss).toEqual(importRequest({ model, data: fixture.data, loss: fixture.loss }).loss);
    expect(request.data.x.shape).toEqual([fixture.data.x.length, ...imported.model.input.shape]);
  });

  it('a functional model: graph, frozen BN, weights in get_weights() order, loss from compile_config', () => {
    const weights = weights3();
    const imported = importModel({ ...functional3(), weights }, 'model');
    const { model } = imported;
    expect(model.input).toEqual({ name: 'x', shape: [4], dtype: 'float32' });
    expect(model.nodes.map((n) => [n.name, n.type, n.inputs, n.trainable])).toEqual([
      ['a', 'dense', ['x'], true],
      ['b', 'dense', ['a'], true],
      ['add', 'add', ['x', 'b'], true],
      ['bn', 'batchNormalization', ['add'], false],
      ['out', 'dense', ['bn'], true],
    ]);
    expect(model.nodes[0].config).toEqual({ units: 4, activation: { type: 'tanh' }, useBias: true, kernelL2: 0.02 });
    expect(model.output).toBe('out');
    const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : [v as number]);
    const got = model.nodes.flatMap((n) => Object.values(n.weights).map((w) => Array.from(w!)));
    expect(got).toEqual(weights.map((w) => Array.from(Float32Array.from(flat(w)))));
    expect(Array.from(model.nodes[3].weights.moving_variance!)).toEqual(Array.from(Float32Array.from(ramp(4, 7))));
    // Keras's trainable_weights: the frozen BN's gamma and beta are constants.
    expect(parameterNames(model)).toEqual(['a/kernel', 'a/bias', 'b/kernel', 'b/bias', 'out/kernel', 'out/bias']);
    expect(imported.loss).toEqual({ type: 'meanSquaredError' });
  });

  it('weights as binary tensors', () => {
    const weights = weights3().map((w) => {
      const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : [v as number]);
      return encodeTensor(flat(w), Array.isArray(w[0]) ? [w.length, (w[0] as number[]).length] : [w.length]);
    });
    const nested = importModel({ ...functional3(), weights: weights3() }, 'model');
    const binary = importModel({ ...functional3(), weights }, 'model');
    expect(binary.model).toEqual(nested.model);
  });

  it.each([
    [{ module: 'keras.losses', class_name: 'SparseCategoricalCrossentropy', config: { name: 'sparse_categorical_crossentropy', reduction: 'sum_over_batch_size', from_logits: true, ignore_class: null }, registered_name: null }, { type: 'sparseCategoricalCrossentropy', fromLogits: true }],
    [{ module: 'keras.losses', class_name: 'Huber', config: { name: 'huber_loss', reduction: 'sum_over_batch_size', delta: 0.5 }, registered_name: null }, { type: 'huber', delta: 0.5 }],
    [{ module: 'keras.losses', class_name: 'function', config: 'categorical_crossentropy', registered_name: 'function' }, { type: 'categoricalCrossentropy' }],
    ['mean_absolute_error', { type: 'meanAbsoluteError' }],
    [['binary_crossentropy'], { type: 'binaryCrossentropy' }],
  ])('the compiled loss %j', (loss, expected) => {
    expect(importModel({ ...functional3(loss), weights: weights3() }, 'model').loss).toEqual(expected);
  });

  it.each([
    [{ module: '__main__', class_name: 'MyLoss', config: {}, registered_name: 'MyLoss' }, 'model.compile_config.loss.class_name', /"MyLoss", which is not supported \(or is a custom class\); send `loss`/],
    [{ module: 'builtins', class_name: 'function', config: { fn: 'x' }, registered_name: 'function' }, 'model.compile_config.loss', /compiled with a loss function/],
    [{ module: 'keras.losses', class_name: 'MeanSquaredError', config: { reduction: 'sum' }, registered_name: null }, 'model.compile_config.loss.config.reduction', /reduction "sum" is not supported/],
    [{ module: 'keras.losses', class_name: 'CategoricalCrossentropy', config: { label_smoothing: 0.1 }, registered_name: null }, 'model.compile_config.loss.config.label_smoothing', /label_smoothing 0\.1/],
    ['hinge', 'model.compile_config.loss', /loss "hinge", which is not supported/],
    [{ out: 'mse', aux: 'mse' }, 'model.compile_config.loss', /2 losses \(one per output\)/],
  ])('a compiled loss that cannot be used (%j) is a problem only when the request names none', (loss, path, message) => {
    const model = { ...functional3(loss), weights: weights3() };
    const imported = importModel(model, 'model');
    expect(imported.loss).toBeUndefined();
    expect(imported.lossProblem).toEqual({ path, message: expect.stringMatching(message) });
    const data = { x: [matrix(1, 4)[0]], y: [[1, 0]] };
    expect(issuesOf(() => importRequest({ model, data }))).toEqual([{ path, message: expect.stringMatching(message) }]);
    expect(importRequest({ model, data, loss: 'mse' }).loss).toEqual({ type: 'meanSquaredError' });
  });

  it('a Sequential with an InputLayer, conv, pools and an embedding-free head; the build_config shape when there is no InputLayer', () => {
    const conv = {
      name: 'conv2d',
      filters: 2,
      kernel_size: [3, 3],
      strides: [1, 1],
      padding: 'same',
      data_format: 'channels_last',
      dilation_rate: [1, 1],
      groups: 1,
      activation: 'relu',
      use_bias: true,
      kernel_initializer: initializer('GlorotUniform'),
      bias_initializer: initializer('Zeros'),
      kernel_regularizer: null,
      bias_regularizer: null,
      activity_regularizer: null,
      kernel_constraint: null,
      bias_constraint: null,
    };
    const layer = (className: string, config: Record<string, unknown>) => ({ module: 'keras.layers', class_name: className, config: { trainable: true, dtype: policy, ...config }, registered_name: null });
    const layers = [
      layer('Conv2D', conv),
      layer('MaxPooling2D', { name: 'pool', pool_size: [2, 2], padding: 'valid', strides: [2, 2], data_format: 'channels_last' }),
      layer('GlobalAveragePooling2D', { name: 'gap', data_format: 'channels_last', keepdims: false }),
      layer('Dense', dense3('head', 3)),
    ];
    const sequential = (withInput: boolean) => ({
      module: 'keras',
      class_name: 'Sequential',
      config: { name: 'sequential', trainable: true, dtype: policy, layers: withInput ? [{ ...input3('img', [null, 6, 6, 1]), name: undefined, inbound_nodes: undefined }, ...layers] : layers },
      registered_name: null,
      build_config: { input_shape: [null, 6, 6, 1] },
    });
    for (const withInput of [true, false]) {
      const { model, shapes } = importModel(sequential(withInput), 'model');
      expect(model.input).toEqual({ name: withInput ? 'img' : 'conv2d_input', shape: [6, 6, 1], dtype: 'float32' });
      expect(model.nodes.map((n) => n.type)).toEqual(['conv2d', 'maxPooling2d', 'globalAveragePooling2d', 'dense']);
      expect(shapes.get('pool')).toEqual([3, 3, 2]);
      expect(shapes.get('head')).toEqual([3]);
    }
    const causal = sequential(true);
    (causal.config.layers[1].config as any).padding = 'causal';
    (causal.config.layers[1].config as any).groups = 2;
    expect(issuesOf(() => importModel(causal, 'model'))).toEqual([
      { path: 'model.config.layers[1].config.groups', message: "model.config.layers[1].config.groups: layer 'conv2d' (Conv2D) has groups 2, which is not supported; only groups 1 is supported" },
      { path: 'model.config.layers[1].config.padding', message: 'model.config.layers[1].config.padding: layer \'conv2d\' (Conv2D) has padding "causal", which is not supported; accepted: "valid", "same"' },
    ]);
  });

  it('get_weights() of the wrong length or shape', () => {
    const short = weights3().slice(1);
    expect(issuesOf(() => importModel({ ...functional3(), weights: short }, 'model'))).toEqual([
      { path: 'model.weights', message: 'model.weights has 9 arrays but the model has 10 weights (model.get_weights()): a/kernel, a/bias, b/kernel, b/bias, bn/gamma, bn/beta, bn/moving_mean, bn/moving_variance, out/kernel, out/bias' },
    ]);
    const wrong = weights3();
    wrong[8] = matrix(4, 3);
    expect(issuesOf(() => importModel({ ...functional3(), weights: wrong }, 'model'))).toEqual([
      { path: 'model.weights[8][0]', message: "model.weights[8][0] has 3 entries but layer 'out' kernel needs 2 on axis 1 (shape [4, 2])" },
    ]);
  });

  it.each([
    ['an LSTM', (m: any) => (m.config.layers[2] = k3('LSTM', { name: 'b', units: 4 }, ['a'])), 'model.config.layers[2].class_name', /layer 'b' is a "LSTM", which is not supported; supported layers: Dense, Conv2D, MaxPooling2D/],
    ['a custom layer', (m: any) => (m.config.layers[2] = { ...k3('MyLayer', { name: 'b' }, ['a']), module: null, registered_name: 'Custom>MyLayer' }), 'model.config.layers[2].class_name', /"MyLayer", which is not supported/],
    ['a depthwise conv', (m: any) => (m.config.layers[2] = k3('DepthwiseConv2D', { name: 'b', depth_multiplier: 2 }, ['a'])), 'model.config.layers[2].class_name', /"DepthwiseConv2D"/],
    ['an activity regularizer', (m: any) => (m.config.layers[2].config.activity_regularizer = { module: 'keras.regularizers', class_name: 'L2', config: { l2: 0.1 } }), 'model.config.layers[2].config.activity_regularizer', /activity_regularizer/],
    ['an unknown option', (m: any) => (m.config.layers[2].config.lora_rank = 4), 'model.config.layers[2].config.lora_rank', /lora_rank 4/],
    ['two outputs', (m: any) => m.config.output_layers.push(['a', 0, 0]), 'model.config.output_layers', /only models with one output/],
    ['a second InputLayer', (m: any) => m.config.layers.splice(1, 0, input3('y', [null, 4])), 'model.config.layers[1]', /second input 'y'/],
    ['a nested model', (m: any) => (m.config.layers[2] = { ...k3('Functional', { name: 'b', layers: [] }, ['a']), module: 'keras.src.models.functional' }), 'model.config.layers[2].class_name', /"Functional", which is not supported/],
    ['an input of unknown size', (m: any) => (m.config.layers[0].config.batch_shape = [null, null]), 'model.config.layers[0].config', /has a size that is not fixed/],
    ['a link to a missing layer', (m: any) => (m.config.layers[2].inbound_nodes[0].args[0].config.keras_history = ['nowhere', 0, 0]), 'model.config.layers[2].inbound_nodes[0]', /'nowhere' is not a layer of the model/],
    ['a model that is not Sequential or functional', (m: any) => (m.class_name = 'MyModel'), 'model.class_name', /the model is a "MyModel"; supported: a Sequential or a functional model/],
  ])('refuses %s by its field', (_name, edit, path, message) => {
    const model: any = { ...functional3(), weights: weights3() };
    edit(model);
    const issues = issuesOf(() => importModel(model, 'model'));
    expect(issues.map((i) => i.path)).toContain(path);
    expect(issues.find((i) => i.path === path)!.message).toMatch(message);
  });
});

describe("Keras 2's format (tf.keras 2.x, tensorflowjs_converter)", () => {
  /** As tf.keras 2.15 writes to_json(): nested-list inbound_nodes, batch_input_shape, L1L2 regularizers, no module keys. */
  const keras2 = {
    class_name: 'Functional',
    config: {
      name: 'model',
      layers: [
        { class_name: 'InputLayer', config: { batch_input_shape: [null, 3], dtype: 'float32', sparse: false, ragged: false, name: 'input_1' }, name: 'input_1', inbound_nodes: [] },
        {
          class_name: 'Dense',
          config: { name: 'dense', trainable: true, dtype: 'float32', units: 2, activation: 'relu', use_bias: true, kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } }, bias_initializer: { class_name: 'Zeros', config: {} }, kernel_regularizer: { class_name: 'L1L2', config: { l1: 0.0, l2: 0.05 } }, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null },
          name: 'dense',
          inbound_nodes: [[['input_1', 0, 0, {}]]],
        },
        { class_name: 'Concatenate', config: { name: 'concatenate', trainable: true, dtype: 'float32', axis: -1 }, name: 'concatenate', inbound_nodes: [[['dense', 0, 0, {}], ['input_1', 0, 0, {}]]] },
        { class_name: 'Dense', config: { name: 'dense_1', trainable: true, dtype: 'float32', units: 1, activation: 'sigmoid', use_bias: false, kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } }, bias_initializer: { class_name: 'Zeros', config: {} }, kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null }, name: 'dense_1', inbound_nodes: [[['concatenate', 0, 0, {}]]] },
      ],
      input_layers: [['input_1', 0, 0]],
      output_layers: [['dense_1', 0, 0]],
    },
    keras_version: '2.15.0',
    backend: 'tensorflow',
  };

  it('reads the graph, the L1L2 regularizer with l1 0 and the weights', () => {
    const weights = [matrix(3, 2), ramp(2), matrix(5, 1, 3)];
    const request = importRequest({ model: { ...keras2, weights }, loss: 'binary_crossentropy', data: { x: [[1, 2, 3]], y: [[1]] } });
    expect(request.model.nodes.map((n) => [n.name, n.inputs])).toEqual([
      ['dense', ['input_1']],
      ['concatenate', ['dense', 'input_1']],
      ['dense_1', ['concatenate']],
    ]);
    expect(request.model.nodes[0].config).toMatchObject({ kernelL2: 0.05, activation: { type: 'relu' } });
    expect(request.model.nodes[1].config).toEqual({ axis: 1 });
    expect(Array.from(request.model.nodes[2].weights.kernel!)).toEqual(Array.from(Float32Array.from(matrix(5, 1, 3).flat())));
    expect(request.loss).toEqual({ type: 'binaryCrossentropy' });
  });

  it('refuses an L1 part and a layer called twice', () => {
    const l1: any = structuredClone(keras2);
    l1.config.layers[1].config.kernel_regularizer.config.l1 = 0.1;
    expect(issuesOf(() => importModel(l1, 'model'))).toEqual([
      { path: 'model.config.layers[1].config.kernel_regularizer', message: expect.stringMatching(/"L1L2" with l1 0\.1, which is not supported; only an L2 regularizer/) },
    ]);
    const shared: any = structuredClone(keras2);
    shared.config.layers[1].inbound_nodes.push([['concatenate', 0, 0, {}]]);
    expect(issuesOf(() => importModel(shared, 'model'))[0]).toEqual({ path: 'model.config.layers[1].inbound_nodes', message: expect.stringMatching(/is called 2 times/) });
  });
});

describe('a stored model ({"model": {"id"}} resolved by the caller)', () => {
  it('is used as imported, with its compiled loss, and the data is checked against it', () => {
    const stored = importModel({ ...functional3(), weights: weights3() }, 'model');
    const body = { model: { id: 'abc' }, data: { x: [ramp(4)], y: [[0, 1]] }, wrt: ['out/kernel'] };
    const request = importRequest(body, stored);
    expect(request.model).toBe(stored.model);
    expect(request.loss).toEqual({ type: 'meanSquaredError' });
    expect(request.wrt).toEqual(['out/kernel']);
    expect(issuesOf(() => importRequest({ ...body, data: { x: [ramp(4)], y: [[0, 1, 2]] } }, stored))).toEqual([
      { path: 'data.y[0]', message: 'data.y[0] must have 2 entries (the last layer\'s units) for meanSquaredError' },
    ]);
    const uncompiled = importModel({ ...functional3({}), weights: weights3() }, 'model');
    expect(issuesOf(() => importRequest(body, uncompiled))).toEqual([{ path: 'model.compile_config.loss', message: expect.stringMatching(/loss function/) }]);
    expect(importRequest({ ...body, loss: 'huber' }, uncompiled).loss).toEqual({ type: 'huber' });
  });
});
