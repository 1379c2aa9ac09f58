import { augmented, preparedBytes, type CostEstimate, type CostShape } from '../cost.js';

/**
 * What the structured assembly (assembly/index.ts) costs, from sizes alone, in the terms of cost.ts:
 * the peak memory of a worker task (the prepared model, the per-example factors it keeps for the job,
 * and one row block's working tensors) and the operations of the whole job.
 */

const FLOAT = 4;
/** [B, m_lo, width] tensors one factor sweep holds per layer it passes (R(z), R(a), R(g), the rules' temporaries, softmax's extras). */
const SWEEP_PER_WIDTH = 10;
/** [rows, columns] tensors of one layer pair in a block: two products, their transposes, the sum, the copy read back. */
const BLOCK_COPIES = 6;
/** Bound on a block's rows x P (floats, 16 MB; the main thread holds blocks in flight): larger ones hardly run faster and balance worse over the workers. */
const BLOCK_FLOATS = 4 * 1024 * 1024;
/** Element-wise operations per [B, m_lo, unit] entry of a sweep (activation and loss rules). */
const ELEMENTWISE_FLOPS_PER_UNIT = 20;

/** A structured plan; `batchChunk` when the factors are computed over chunks of the batch (assembly/chunked.ts). */
export type StructuredEstimate = CostEstimate & { batchChunk?: number };

/**
 * The structured plan within `budgetBytes`, or null when even blocks of one kernel row over chunks of
 * one example do not fit (then the R-operator path, whose factors are smaller, is used): the factors of
 * the whole batch kept for the job when they fit, else computed per row block over the largest chunks
 * of the batch (halving) that fit. `force` returns the whole batch's smallest plan regardless of the
 * budget (tests and benchmarks compare the paths).
 */
export function structuredCost(shape: CostShape, budgetBytes: number, force = false): StructuredEstimate | null {
  const whole = structuredPlan(shape, budgetBytes, null);
  if (whole.peakBytes <= budgetBytes) return whole;
  for (let chunk = Math.ceil(shape.batch / 2); chunk >= 1; chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)) {
    const chunked = structuredPlan(shape, budgetBytes, chunk);
    if (chunked.peakBytes <= budgetBytes) return chunked;
  }
  return force ? whole : null;
}

/** The plan with the factors of the whole batch kept (batchChunk null), or computed per block over chunks of batchChunk examples. */
function structuredPlan(shape: CostShape, budgetBytes: number, batchChunk: number | null): StructuredEstimate {
  const { batch, layers, selected } = shape;
  const factorBatch = batchChunk ?? batch;
  const size = selected.reduce((sum, t) => sum + t.size, 0);
  const chosen = [...new Set(selected.map((t) => t.layer))].sort((a, b) => a - b);
  const columnsOf = (l: number) => selected.filter((t) => t.layer === l).reduce((sum, t) => sum + t.size, 0);
  const units = (l: number) => layers[l].units;
  const widthsAbove = (lo: number) => layers.slice(lo).reduce((sum, layer) => sum + layer.units + augmented(layer), 0);

  let keptFloats = 0; // the whole batch: every pair's factors; chunks: one sweep's, the largest
  let sweepFloats = 0;
  let flops = 0;
  const passes = (batchChunk ? 2 : 1) * layers.reduce((sum, layer) => sum + 3 * 2 * batch * layer.inputs * layer.units, 0); // forward, backward, gradient
  const sweepFlops: number[] = [];
  for (const lo of chosen) {
    let pairFloats = 0;
    for (const hi of chosen) if (hi >= lo) pairFloats += factorBatch * units(lo) * (units(hi) + (hi > lo ? augmented(layers[hi]) : 0));
    keptFloats = batchChunk ? Math.max(keptFloats, pairFloats) : keptFloats + pairFloats;
    sweepFloats = Math.max(sweepFloats, SWEEP_PER_WIDTH * factorBatch * units(lo) * widthsAbove(lo));
    let sweep = 0;
    for (let k = lo; k < layers.length; k++) {
      sweep += ELEMENTWISE_FLOPS_PER_UNIT * batch * units(lo) * units(k);
      if (k > lo) sweep += 3 * 2 * batch * units(lo) * layers[k].inputs * units(k); // R(z) forward, R(g) backward, E
    }
    sweepFlops[lo] = sweep;
    // The GEMMs of the upper blocks (the manager copies the lower ones by symmetry): two terms above the
    // diagonal; on it one, over about half the layer's own columns (see firstOwnRow).
    for (const hi of chosen) if (hi >= lo) flops += hi > lo ? 2 * 2 * batch * columnsOf(lo) * columnsOf(hi) : batch * columnsOf(lo) ** 2;
  }

  const widest = Math.max(...chosen.map(units));
  const widestColumns = Math.max(...chosen.map(columnsOf));
  const widestInputs = Math.max(...chosen.map((l) => augmented(layers[l])));
  const narrowest = Math.min(...chosen.map(units));
  // The whole batch's prepared model, and with chunks every chunk's (as much again).
  const fixed = (batchChunk ? 2 : 1) * preparedBytes(shape, size) + FLOAT * keptFloats;
  // Blocks are whole kernel rows (planRowBlocks' wholeRows): at most `rows` of them, or one kernel row;
  // their GEMMs' Khatri-Rao factor [(i, p), B_c] and its broadcast temporary; with chunks, the sum.
  const blockBytes = (rows: number) =>
    FLOAT * (rows * (BLOCK_COPIES * widestColumns + size) + 2 * Math.ceil(rows / narrowest) * widestInputs * factorBatch + (batchChunk ? rows * size : 0));
  const peak = (rows: number) => fixed + Math.max(FLOAT * sweepFloats + (batchChunk ? FLOAT * rows * size : 0), blockBytes(rows));
  const efficientRows = Math.max(widest, Math.floor(BLOCK_FLOATS / Math.max(size, 1)));
  let rows = Math.min(efficientRows, size);
  while (rows > widest && peak(rows) > budgetBytes) rows = Math.floor(rows / 2);
  const blockSize = Math.max(widest, rows);
  flops += passes;
  if (batchChunk) {
    // Every block recomputes its own layer's sweep.
    for (const lo of chosen) flops += sweepFlops[lo] * Math.ceil(columnsOf(lo) / blockSize);
  } else {
    for (const lo of chosen) flops += sweepFlops[lo];
  }
  return { size, blockSize, peakBytes: peak(blockSize), minimumBytes: peak(widest), flops, ...(batchChunk ? { batchChunk } : {}) };
}
