import type { RowBlock } from '../curvature.js';
import type { DenseRequest } from '../dense/request.js';
import { PreparedModel } from '../model.js';
import type { Matrix } from '../spec.js';
import { StructuredAssembly } from './index.js';

/**
 * The structured assembly over chunks of the batch, for batches whose per-example factors do not fit
 * the memory budget at once (assembly/cost.ts picks the chunk). Every loss is a mean over the examples,
 * so H = sum over chunks of (B_c / B) H_c, with H_c the Hessian of the chunk's own mean loss (the l2 term
 * too: the weights sum to 1). Each chunk keeps its prepared model (the forward and backward pass, of
 * size B_c x the widths); a row block computes its own layer's factors chunk by chunk and drops them, so
 * that only one chunk's factors exist at a time (at the price of recomputing them per block).
 */
export class ChunkedAssembly {
  private readonly chunks: { weight: number; model: PreparedModel }[] = [];

  constructor(request: DenseRequest, batchChunk: number) {
    const batch = request.data.x.rows;
    try {
      for (let first = 0; first < batch; first += batchChunk) {
        const end = Math.min(batch, first + batchChunk);
        this.chunks.push({ weight: (end - first) / batch, model: new PreparedModel(batchRows(request, first, end)) });
      }
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** As StructuredAssembly.rows: the weighted sum of the chunks' rows (finite, as a convex combination of finite rows). */
  rows(block: RowBlock, upperOnly = false, into?: ArrayBuffer): Float32Array {
    let out: Float32Array | null = null;
    for (const { weight, model } of this.chunks) {
      const layer = model.parameters[block.tensor].layer;
      // The sweeps this block's pairs need: its own layer's, and with the lower columns those below it.
      const lows = [...new Set(model.parameters.map((t) => t.layer))].filter((l) => (upperOnly ? l === layer : l <= layer));
      const assembly = new StructuredAssembly(model, lows);
      try {
        const rows = assembly.rows(block, upperOnly, out ? undefined : into);
        if (!out) {
          out = rows;
          for (let i = 0; i < out.length; i++) out[i] *= weight;
        } else {
          for (let i = 0; i < out.length; i++) out[i] += weight * rows[i];
        }
      } finally {
        assembly.dispose();
      }
    }
    return out!;
  }

  dispose(): void {
    for (const { model } of this.chunks) model.dispose();
    this.chunks.length = 0;
  }
}

/** The request on the examples [first, end) of its batch (views of its data, no copy). */
function batchRows(request: DenseRequest, first: number, end: number): DenseRequest {
  const rows = (m: Matrix): Matrix => ({ rows: end - first, columns: m.columns, values: m.values.subarray(first * m.columns, end * m.columns) });
  return { ...request, data: { x: rows(request.data.x), y: rows(request.data.y) } };
}
