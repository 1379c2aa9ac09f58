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

/**
 * The structured plan within `budgetBytes`, or null when even blocks of one kernel row do not fit
 * (then the R-operator path, whose factors are smaller, is used). `force` returns the smallest plan
 * regardless of the budget (tests and benchmarks compare the paths).
 */
export function structuredCost(shape: CostShape, budgetBytes: number, force = false): CostEstimate | null {
  const { batch, layers, selected } = shape;
  const size = selected.reduce((sum, t) => sum + t.size, 0);
  const chosen = [...new Set(selected.map((t) => t.layer))].sort((a, b) => a - b);
  const columnsOf = (l: number) => selected.filter((t) => t.layer === l).reduce((sum, t) => sum + t.size, 0);
  const units = (l: number) => layers[l].units;
  const widthsAbove = (lo: number) => layers.slice(lo).reduce((sum, layer) => sum + layer.units + augmented(layer), 0);

  let keptFloats = 0;
  let sweepFloats = 0;
  let flops = 0;
  for (const layer of layers) flops += 3 * 2 * batch * layer.inputs * layer.units; // forward, backward, gradient
  for (const lo of chosen) {
    for (const hi of chosen) if (hi >= lo) keptFloats += batch * units(lo) * (units(hi) + (hi > lo ? augmented(layers[hi]) : 0));
    sweepFloats = Math.max(sweepFloats, SWEEP_PER_WIDTH * batch * units(lo) * widthsAbove(lo));
    for (let k = lo; k < layers.length; k++) {
      flops += ELEMENTWISE_FLOPS_PER_UNIT * batch * units(lo) * units(k);
      if (k > lo) flops += 3 * 2 * batch * units(lo) * layers[k].inputs * units(k); // R(z) forward, R(g) backward, E
    }
    // The GEMMs of the upper blocks (the manager copies the lower ones by symmetry): two terms above the
    // diagonal; on it one, over about half the layer's own columns (see firstOwnRow).
    for (const hi of chosen) if (hi >= lo) flops += hi > lo ? 2 * 2 * batch * columnsOf(lo) * columnsOf(hi) : batch * columnsOf(lo) ** 2;
  }

  const widest = Math.max(...chosen.map(units));
  const widestColumns = Math.max(...chosen.map(columnsOf));
  const fixed = preparedBytes(shape, size) + FLOAT * keptFloats;
  // Blocks are whole kernel rows (planRowBlocks' wholeRows): at most `rows` of them, or one kernel row.
  const blockBytes = (rows: number) => FLOAT * rows * (BLOCK_COPIES * widestColumns + size);
  const peak = (rows: number) => fixed + Math.max(FLOAT * sweepFloats, blockBytes(rows));
  const efficientRows = Math.max(widest, Math.floor(BLOCK_FLOATS / Math.max(size, 1)));
  let rows = Math.min(efficientRows, size);
  while (rows > widest && peak(rows) > budgetBytes) rows = Math.floor(rows / 2);
  const blockSize = Math.max(widest, rows);
  if (!force && peak(blockSize) > budgetBytes) return null;
  return { size, blockSize, peakBytes: peak(blockSize), minimumBytes: peak(widest), flops };
}
