import type { Keep } from '../activations/rule.js';
import { finiteRows, planRowBlocks, type RowBlock } from '../curvature.js';
import { NumericalError, SpecError } from '../errors.js';
import { glorotUniformValues } from '../initializers.js';
import { fusedOutput } from '../losses/fusion.js';
import { lossRule } from '../losses/index.js';
import type { LossState } from '../losses/rule.js';
import type { MatrixKind } from '../operators/operator.js';
import type { EngineRequest, NodeSpec, WeightName } from '../spec.js';
import { tf, type Tensor, type Tensor2D, type Tensor3D } from '../tf.js';
import { diagonalPlan } from './diagonal.js';
import { layerDefinition } from './layers/index.js';
import { LayerError, markUnits, plus, product, secondOrderView, type PreparedLayer, type RForward, type SecondOrder, type WeightDirections } from './layers/layer.js';
import { graphStructure, type GraphParameter, type GraphStructure } from './structure.js';

/**
 * A graph model evaluated once on its batch: forward pass, loss, backward pass, and every
 * direction-independent tensor the R-operator needs. Gives Hessian-vector products for any K
 * directions at once and rows of the Hessian for blocks of unit directions. Holds TF.js memory until
 * dispose().
 */
export class PreparedGraph {
  readonly structure: GraphStructure;
  /** The tensors the result is over (the `wrt` selection, or all), with offsets in that order. */
  readonly parameters: GraphParameter[];
  readonly size: number;
  readonly loss: number;
  readonly gradient: Float32Array;
  private readonly layers: PreparedLayer[] = [];
  /** Nodes the backward pass reached (ancestors of the output): the others have no curvature. */
  private readonly reached: boolean[] = [];
  private readonly l2: number[];
  private lossState!: LossState;
  private readonly kept: Tensor[] = [];

  constructor(readonly request: EngineRequest) {
    this.structure = graphStructure(request);
    this.parameters = this.structure.selected;
    this.size = this.parameters.reduce((n, t) => n + t.size, 0);
    const { model } = request;
    this.l2 = model.nodes.map((node) => ('kernelL2' in node.config ? node.config.kernelL2 : 0));
    const weights = model.nodes.map((node, i) => initialWeights(node, i, this.structure, model.seed));
    const keep: Keep = (t) => {
      this.kept.push(tf.keep(t)); // outlives the tidy that prepares the graph
      return t;
    };
    let gradients: Partial<Record<WeightName, Tensor>>[] = [];
    try {
      gradients = tf.tidy(() => {
        this.forward(weights, keep);
        return this.backward();
      });
      this.loss = this.lossState.value + this.regularization(weights);
      this.gradient = tf.tidy(() =>
        this.flatten(this.parameters.map((t) => plus(gradients[t.layer][t.weight] ?? null, this.l2Term(t, weights[t.layer][t.weight])))),
      );
    } catch (error) {
      this.dispose();
      throw error;
    } finally {
      for (const g of gradients) tf.dispose(Object.values(g));
    }
    const problem = !Number.isFinite(Math.fround(this.loss))
      ? `the loss is ${Number.isFinite(this.loss) ? `${this.loss}, beyond float32's range,` : this.loss} on this data (e.g. log of 0 or 1 in a cross-entropy, or an overflow)`
      : !this.gradient.every(Number.isFinite)
        ? 'the gradient is not finite on this data'
        : null;
    if (problem) {
      this.dispose();
      throw new NumericalError(problem);
    }
  }

  get batch(): number {
    return this.request.data.x.shape[0];
  }

  private forward(weights: Partial<Record<WeightName, Float32Array>>[], keep: Keep): void {
    const { model, data, loss } = this.request;
    const x = tf.tensor(data.x.values, data.x.shape, model.input.dtype);
    const floatX = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    const outputs: Tensor[] = [];
    const fused = this.fusion();
    model.nodes.forEach((node, i) => {
      const inputs = this.structure.nodes[i].inputs.map((s) => (s < 0 ? (node.type === 'embedding' ? x : floatX) : outputs[s]));
      const values = weights[i];
      const tensors = Object.fromEntries(
        Object.entries(this.structure.nodes[i].shapes.weights).map(([name, shape]) => [name, keep(tf.tensor(values[name as WeightName]!, shape))]),
      );
      const activation = i === this.structure.output ? fused.outputActivation : undefined;
      try {
        this.layers.push(layerDefinition(node.type).prepare(node as never, inputs, tensors, { keep, activation }));
      } catch (error) {
        // Shapes were checked before; what a layer finds only in the values (an embedding id out of range) is in the data.
        if (error instanceof LayerError) throw new SpecError([{ path: 'data.x', message: `layer '${node.name}' (${node.type}): ${error.message}` }]);
        throw error;
      }
      outputs.push(this.layers[i].output);
    });
    const rule = lossRule(loss.type);
    const prediction = outputs[this.structure.output] as Tensor2D;
    const { y } = data;
    const targets =
      rule.targets === 'labels'
        ? (tf.cast(tf.oneHot(tf.tensor1d(Int32Array.from(y.values), "int32"), this.structure.units), "float32") as Tensor2D)
        : tf.tensor2d(y.values, [y.rows, y.columns]);
    this.lossState = rule.apply(prediction, targets, fused.loss, keep);
  }

  /** The output node's activation and the loss's parameters (a sigmoid or softmax fused into its cross-entropy). */
  private fusion() {
    const node = this.request.model.nodes[this.structure.output];
    const own = 'activation' in node.config ? node.config.activation : { type: 'linear' };
    const fused = fusedOutput(this.request.loss, own);
    return { outputActivation: 'activation' in node.config ? fused.outputActivation : undefined, loss: 'activation' in node.config ? fused.loss : this.request.loss };
  }

  /** dL/d output of every node in reverse order (fan-out summed); returns each node's weight gradients. */
  private backward(): Partial<Record<WeightName, Tensor>>[] {
    const nodes = this.structure.nodes;
    const g: (Tensor | null)[] = nodes.map(() => null);
    g[this.structure.output] = this.lossState.gradient;
    const gradients: Partial<Record<WeightName, Tensor>>[] = nodes.map(() => ({}));
    for (let i = nodes.length - 1; i >= 0; i--) {
      this.reached[i] = g[i] !== null;
      if (!g[i]) continue;
      const result = this.layers[i].backward(g[i]!);
      nodes[i].inputs.forEach((s, j) => {
        if (s >= 0 && result.inputs[j]) g[s] = plus(g[s], result.inputs[j]);
      });
      gradients[i] = result.weights;
    }
    return gradients;
  }

  /** l2 Σ W² over regularized kernels, in float64. */
  private regularization(weights: Partial<Record<WeightName, Float32Array>>[]): number {
    let sum = 0;
    this.l2.forEach((l2, i) => {
      if (l2) for (const w of weights[i].kernel!) sum += l2 * w * w;
    });
    return sum;
  }

  /** 2 l2 W (or 2 l2 V): the regularizer's gradient (or Hessian times V) on a regularized kernel. */
  private l2Term(t: GraphParameter, values: Float32Array | Tensor | undefined): Tensor | null {
    const l2 = this.l2[t.layer];
    if (!l2 || t.weight !== 'kernel' || !values) return null;
    return tf.mul(values instanceof Float32Array ? tf.tensor(values, t.shape) : values, 2 * l2);
  }

  private flatten(pieces: (Tensor | null)[]): Float32Array {
    const out = new Float32Array(this.size);
    pieces.forEach((piece, i) => {
      if (piece) out.set(piece.dataSync() as Float32Array, this.parameters[i].offset);
    });
    return out;
  }

  /**
   * M V for K directions V [K x P] (row-major, over the selected parameters), M the Hessian, the GGN or the
   * empirical Fisher: the R-operator's forward pass from the first node the directions touch (a node that
   * is no descendant of theirs keeps R = 0), M's curvature at the output (outputCurvature), and the
   * backward pass down to the lowest node among `columns`, with the second-order terms M keeps; the
   * columns of other tensors stay 0. Returns [K x P].
   */
  private products(directions: Map<number, Tensor>, count: number, columns: readonly GraphParameter[], kind: MatrixKind): Float32Array {
    const rows = new Float32Array(count * this.size);
    tf.tidy(() => {
      const v: WeightDirections[] = this.structure.nodes.map(() => ({}));
      for (const [index, tensor] of directions) v[this.parameters[index].layer][this.parameters[index].weight] = tensor;
      const first = Math.min(...[...directions.keys()].map((i) => this.parameters[i].layer));
      const forward = this.rForward(v, first);
      const output = forward[this.structure.output]?.output ?? null;
      this.rBackward(output && this.outputCurvature(kind, output), kind, forward, v, columns, rows, count);
    });
    return rows;
  }

  /** R(y) of every node from `first` on, for weight directions v (null where R = 0). */
  private rForward(v: WeightDirections[], first: number): (RForward | null)[] {
    const forward: (RForward | null)[] = this.structure.nodes.map(() => null);
    for (let i = first; i < forward.length; i++) {
      const inputs = this.rInputs(i, forward);
      if (inputs.every((r) => !r) && Object.keys(v[i]).length === 0) continue;
      forward[i] = this.layers[i].rForward(inputs, v[i]);
    }
    return forward;
  }

  private rInputs(i: number, forward: readonly (RForward | null)[]): (Tensor | null)[] {
    return this.structure.nodes[i].inputs.map((s) => (s < 0 ? null : (forward[s]?.output ?? null)));
  }

  /**
   * R(dL/d output) [K, B, units] from R(output): the loss's curvature (Hessian and GGN: the output
   * activation's own comes in the output node's backward), or for the Fisher (1/B) Σ_b g_b (g_b · v) as
   * a gradient: each example's dL/d output scaled by s_b = B dL/d output_b · R(output_b) = g_b · v.
   */
  private outputCurvature(kind: MatrixKind, rOutput: Tensor): Tensor {
    const gradient = this.lossState.gradient;
    if (kind === 'fisher') return tf.mul(gradient, tf.mul(tf.sum(tf.mul(rOutput, gradient), -1, true), this.batch));
    const perExample = tf.transpose(rOutput, [1, 0, 2]) as Tensor3D; // the loss rules take [B, K, m]
    return tf.transpose(this.lossState.hvp(perExample), [1, 0, 2]);
  }

  /**
   * The backward pass of R(dL/d output) `top` down to the lowest node among `columns`, placing each
   * column tensor's R(dL/dW) (plus 2 l2 V on a regularized kernel, but for the Fisher) in `rows`. Which
   * second-order terms each node adds follows `kind` (see SecondOrder).
   */
  private rBackward(
    top: Tensor | null,
    kind: MatrixKind,
    forward: readonly (RForward | null)[],
    v: WeightDirections[],
    columns: readonly GraphParameter[],
    rows: Float32Array,
    count: number,
  ): void {
    const nodes = this.structure.nodes;
    const lowest = Math.min(...columns.map((t) => t.layer));
    const rg: (Tensor | null)[] = nodes.map(() => null);
    rg[this.structure.output] = top;
    for (let i = nodes.length - 1; i >= lowest; i--) {
      if (!this.reached[i] || (!rg[i] && !forward[i] && Object.keys(v[i]).length === 0)) continue;
      const layerColumns = columns.filter((t) => t.layer === i);
      const wanted = { inputs: i > lowest, weights: layerColumns.map((t) => t.weight) };
      const secondOrder: SecondOrder = kind === 'hessian' ? 'all' : kind === 'ggn' && i === this.structure.output ? 'activation' : 'none';
      const seen = secondOrderView(secondOrder, forward[i], this.rInputs(i, forward), v[i]);
      const result = this.layers[i].rBackward(rg[i], seen.forward, seen.rInputs, seen.v, wanted);
      nodes[i].inputs.forEach((s, j) => {
        if (s >= 0 && result.inputs[j]) rg[s] = plus(rg[s], result.inputs[j]);
      });
      for (const t of layerColumns) {
        const column = plus(result.weights[t.weight] ?? null, kind === 'fisher' ? null : this.l2Term(t, v[i][t.weight]));
        if (column) placeColumns(rows, this.size, count, t, column.dataSync() as Float32Array);
      }
    }
  }

  /** M V for K directions V [K x P] over the selected parameters (row-major), M the Hessian, GGN or Fisher; returns [K x P]. */
  times(kind: MatrixKind, vectors: Float32Array, count: number): Float32Array {
    const directions = new Map<number, Tensor>();
    this.parameters.forEach((t, index) => {
      const slice = new Float32Array(count * t.size);
      for (let d = 0; d < count; d++) slice.set(vectors.subarray(d * this.size + t.offset, d * this.size + t.offset + t.size), d * t.size);
      if (slice.some((x) => x !== 0)) directions.set(index, tf.tensor(slice, [count, ...t.shape]));
    });
    try {
      if (directions.size === 0) return new Float32Array(count * this.size);
      return this.products(directions, count, this.parameters, kind);
    } finally {
      tf.dispose([...directions.values()]);
    }
  }

  /**
   * Rows [block.count x P] of the Hessian (unit directions on consecutive elements of one tensor). With
   * `upperOnly`, only the columns of tensors in the block's node and later nodes are computed (the rest
   * stay 0): by symmetry they are rows of earlier nodes' directions, which a caller keeping those can copy.
   */
  rows(block: RowBlock, upperOnly = false): Float32Array {
    const tensor = this.parameters[block.tensor];
    const columns = upperOnly ? this.parameters.filter((t) => t.layer >= tensor.layer) : this.parameters;
    return finiteRows(this.unitProducts(block, columns, 'hessian'), block);
  }

  /** M times the block's unit directions, only `columns` computed (marked as units, so that layers may gather). */
  private unitProducts(block: RowBlock, columns: readonly GraphParameter[], kind: MatrixKind): Float32Array {
    const tensor = this.parameters[block.tensor];
    const values = new Float32Array(block.count * tensor.size);
    for (let d = 0; d < block.count; d++) values[d * tensor.size + block.start + d] = 1;
    const unit = markUnits(tf.tensor(values, [block.count, ...tensor.shape]), Int32Array.from({ length: block.count }, (_, d) => block.start + d));
    try {
      return this.products(new Map([[block.tensor, unit]]), block.count, columns, kind);
    } finally {
      unit.dispose();
    }
  }

  /**
   * The exact diagonal of M over the selected parameters, `blockSize` directions per pass, by the way
   * diagonalPlan picks (see DiagonalMethod). Memory: max(blockSize, logits) x P floats besides one pass's tensors.
   */
  diagonal(kind: MatrixKind, blockSize: number): Float32Array {
    const { method } = diagonalPlan(this.request, this.structure, kind);
    const out = new Float32Array(this.size);
    if (method === 'units') {
      // Each product computes only its own tensor's columns: the backward pass stops at that tensor's node.
      for (const block of planRowBlocks(this.parameters, blockSize)) {
        const rows = this.unitProducts(block, [this.parameters[block.tensor]], kind);
        for (let d = 0; d < block.count; d++) out[block.row + d] = rows[d * this.size + block.row + d];
      }
      return out;
    }
    const perLogit = method === 'logits';
    const perExample = perLogit ? this.structure.units : 1;
    const examples = Math.max(1, Math.floor(blockSize / perExample));
    const curvature = perLogit ? this.logitCurvature() : null;
    for (let first = 0; first < this.batch; first += examples) {
      const count = Math.min(examples, this.batch - first);
      // An example's m Jacobian rows are combined together, in passes of at most blockSize directions.
      const rows = new Float32Array(count * perExample * this.size);
      for (let from = 0; from < count * perExample; from += blockSize) {
        rows.set(this.outputBackward(first, from, Math.min(from + blockSize, count * perExample), perLogit), from * this.size);
      }
      if (curvature) for (let e = 0; e < count; e++) addQuadraticDiagonal(out, rows, e * perExample, perExample, curvature, first + e, this.size);
      else for (let i = 0; i < rows.length; i++) out[i % this.size] += (rows[i] * rows[i]) / this.batch;
    }
    if (curvature) {
      for (const t of this.parameters) if (t.weight === 'kernel' && this.l2[t.layer]) for (let e = 0; e < t.size; e++) out[t.offset + e] += 2 * this.l2[t.layer];
    }
    return out;
  }

  /** Λ_b [B, m, m] row-major (the 1/B included): the loss's curvature w.r.t. the output, along its unit directions. */
  private logitCurvature(): Float32Array {
    const { units } = this.structure;
    return tf.tidy(() => this.lossState.hvp(tf.tile(tf.expandDims(tf.eye(units), 0), [this.batch, 1, 1]) as Tensor3D).dataSync() as Float32Array);
  }

  /**
   * One backward pass (no regularizer, no second-order term) from the output, of directions from..to-1,
   * returning their rows over the selected parameters. Without `perLogit`, direction d is example
   * first + d: B dL/d output on it and 0 elsewhere, which gives g_b, the gradient of its loss alone. With
   * `perLogit`, direction d is example first + d / m and unit vector e_j (j = d mod m) of its output,
   * which gives J_bᵀ e_j, a row of its output's Jacobian.
   */
  private outputBackward(first: number, from: number, to: number, perLogit: boolean): Float32Array {
    const { units } = this.structure;
    const count = to - from;
    const rows = new Float32Array(count * this.size);
    tf.tidy(() => {
      const width = perLogit ? units : 1;
      const top = new Float32Array(count * this.batch * width);
      for (let d = from; d < to; d++) {
        const example = first + Math.floor(d / width);
        top[((d - from) * this.batch + example) * width + (d % width)] = perLogit ? 1 : this.batch;
      }
      const directions = tf.tensor3d(top, [count, this.batch, width]);
      const rg = perLogit ? directions : tf.mul(directions, this.lossState.gradient);
      const nodes = this.structure.nodes;
      // The Fisher's pass is the plain one: no second-order term, no regularizer.
      this.rBackward(rg, 'fisher', nodes.map(() => null), nodes.map(() => ({})), this.parameters, rows, count);
    });
    return rows;
  }

  dispose(): void {
    tf.dispose(this.kept);
    this.kept.length = 0;
  }
}

/** Copies one tensor's columns, [K, size] row-major, into K rows of width `width`. */
function placeColumns(rows: Float32Array, width: number, count: number, tensor: GraphParameter, values: Float32Array): void {
  for (let d = 0; d < count; d++) rows.set(values.subarray(d * tensor.size, (d + 1) * tensor.size), d * width + tensor.offset);
}

/**
 * A node's weights: as given, else from the model seed (spec.ts): kernels and embeddings Glorot-uniform
 * (fans as Keras: a conv kernel [kh, kw, in, out] has fan-in kh kw in and fan-out kh kw out; a dense
 * kernel drawn exactly as the dense path draws it), gamma and moving variance ones, the rest zeros.
 */
function initialWeights(node: NodeSpec, index: number, structure: GraphStructure, seed: number): Partial<Record<WeightName, Float32Array>> {
  const out: Partial<Record<WeightName, Float32Array>> = {};
  for (const [name, shape] of Object.entries(structure.nodes[index].shapes.weights) as [WeightName, number[]][]) {
    const given = node.weights[name];
    if (given) out[name] = given;
    else if (name === 'kernel' || name === 'embeddings') {
      const receptive = product(shape.slice(0, -2));
      const [fanIn, fanOut] = [receptive * shape[shape.length - 2], receptive * shape[shape.length - 1]];
      out[name] = Float32Array.from(glorotUniformValues(product(shape), fanIn, fanOut, seed, index));
    } else out[name] = new Float32Array(product(shape)).fill(name === 'gamma' || name === 'moving_variance' ? 1 : 0);
  }
  return out;
}

/**
 * out += Σ_jk Λ[j,k] a_j ⊙ a_k over example b's m Jacobian rows a_j = rows[start + j] (width `width`) and
 * its Λ_b (curvature [B, m, m]): example b's share of diag(Jᵀ Λ J), in float64 per entry.
 */
function addQuadraticDiagonal(out: Float32Array, rows: Float32Array, start: number, m: number, curvature: Float32Array, b: number, width: number): void {
  const lambda = curvature.subarray(b * m * m, (b + 1) * m * m);
  for (let i = 0; i < width; i++) {
    let sum = 0;
    for (let j = 0; j < m; j++) {
      const aj = rows[(start + j) * width + i];
      if (aj === 0) continue;
      let inner = 0;
      for (let k = 0; k < m; k++) inner += lambda[j * m + k] * rows[(start + k) * width + i];
      sum += aj * inner;
    }
    out[i] += sum;
  }
}
