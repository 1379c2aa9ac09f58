/**
 * The dense path's request inside the engine's graph (compute/dense/request.ts): every fixture written as
 * a graph (engineRequest) is found again as a dense stack (denseStack) and computes the float64 PyTorch
 * reference through the pipeline (hessianOf); graphs that are not dense stacks are recognised, with the
 * first layer that is not.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MEMORY_BUDGET_BYTES, denseStack, firstNonDense, hessianOf, initBackend, planRequest, requestBytes } from '../src/compute/index.js';
import { parseEngineRequest as graphOf } from '../src/hessian.js';
import { fixtures, relativeError } from './helpers.js';

beforeAll(async () => {
  await initBackend();
});

describe('denseStack', () => {
  it.each(fixtures().map((c) => [c.name, c] as const))('%s: the graph form is a dense stack that computes the reference', async (_, c) => {
    const graph = graphOf(c.request);
    expect(firstNonDense(graph)).toBeNull();
    const dense = denseStack(graph)!;
    expect(dense.model.layers.map((l) => l.name)).toEqual(graph.model.nodes.map((n) => n.name));
    const result = await hessianOf(graph);
    expect(['structured', 'rOperator']).toContain(result.meta.method);
    expect(result.parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size }))).toEqual(c.expected.parameters);
    expect(Math.abs(result.loss - c.expected.loss)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(c.expected.loss)));
    expect(relativeError(result.gradient, c.expected.gradient)).toBeLessThanOrEqual(1e-4);
    expect(relativeError(result.hessian!, c.expected.hessian.flat())).toBeLessThanOrEqual(1e-4);
  });

  const seed = () => graphOf(fixtures().find((c) => c.name === 'depth_3_layers_tanh_sigmoid_gelu')!.request);

  it('is null for a graph with a layer that is not dense, naming it', () => {
    const graph = seed();
    graph.model.nodes.splice(1, 0, { name: 'drop', type: 'dropout', inputs: [graph.model.nodes[0].name], config: { rate: 0.5 }, weights: {}, trainable: true });
    graph.model.nodes[2].inputs = ['drop'];
    expect(denseStack(graph)).toBeNull();
    expect(firstNonDense(graph)).toMatchObject({ node: { name: 'drop' }, reason: "layer 'drop' is dropout" });
  });

  it('is null for a frozen layer, a skip connection, an integer input and an output that is not the last layer', () => {
    const frozen = seed();
    frozen.model.nodes[1].trainable = false;
    expect(firstNonDense(frozen)?.reason).toMatch(/is not trainable/);
    const skip = seed();
    skip.model.nodes[2].inputs = [skip.model.input.name];
    expect(firstNonDense(skip)?.node?.name).toBe(skip.model.nodes[2].name);
    const ids = seed();
    ids.model.input.dtype = 'int32';
    expect(firstNonDense(ids)?.reason).toMatch(/int32/);
    const early = seed();
    early.model.output = early.model.nodes[0].name;
    expect(denseStack(early)).toBeNull();
  });
});

describe('the pipeline', () => {
  it('counts the bytes of every weight and of the data a request holds', () => {
    const graph = graphOf(fixtures().find((c) => c.name === 'depth_3_layers_tanh_sigmoid_gelu')!.request);
    const weights = graph.model.nodes.reduce((n, node) => n + (node.weights.kernel?.length ?? 0) + (node.weights.bias?.length ?? 0), 0);
    expect(weights).toBeGreaterThan(0);
    expect(requestBytes(graph)).toBe(4 * (weights + graph.data.x.values.length + graph.data.y.values.length));
  });

  it('plans a dense stack on the dense paths, with the parameters the fixture lists and the model size', () => {
    const c = fixtures().find((f) => f.name === 'wrt_dense_2_kernel')!;
    const plan = planRequest(graphOf(c.request), DEFAULT_MEMORY_BUDGET_BYTES);
    expect(plan.method).toBe('structured');
    expect(plan.parameters.map(({ name, shape, offset, size }) => ({ name, shape, offset, size }))).toEqual(c.expected.parameters);
    expect(plan.size).toBe(c.expected.gradient.length);
    expect(plan.modelSize).toBeGreaterThan(plan.size);
    expect(planRequest(graphOf(c.request), DEFAULT_MEMORY_BUDGET_BYTES, 'rOperator').method).toBe('rOperator');
  });
});
