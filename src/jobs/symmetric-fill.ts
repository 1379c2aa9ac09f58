import type { RowBlock, Span, Tile } from '../compute/index.js';

/** Jobs of more blocks keep no tiles (see SymmetricFill.tiled). */
const MAX_TILED_BLOCKS = 512;

/**
 * The symmetric fill of a running job from memory. A block's rows come back upper-only: the columns
 * its spans name (symmetricColumns) are 0 and equal, by symmetry, the same block's columns in rows
 * computed before. Instead of reading those back from the matrix file (one read per earlier row and
 * block: about a million reads at P = 19158, which held the main thread for seconds), each block's
 * thread returns, with its rows, their transposes cut into tiles for the later blocks that need them
 * (see tilesOf() and the worker's transposedTiles), which fill() places and drops once those are filled.
 * The transposes are made on the compute threads, not here: on the main thread they were the job's
 * bottleneck at P = 6154, its threads waiting for them a third of the time. What is held at once is at
 * most the values between the rows done and the rows to come, about P²/4 floats (400 MB at
 * P = 20000): within `budgetBytes` the tiles are asked for; a tile that would pass it is not, and its
 * values are read from the file as before.
 */
export class SymmetricFill {
  /** needs[dest]: the source blocks whose rows dest's spans name, each with the rows [from, to) of it in the span. */
  private readonly needs: Need[][];
  /** The same, by source: the later blocks that need each block's rows. */
  private readonly neededBy: { dest: number; need: Need }[][];
  /** The tiles asked of each source block with its rows (tilesOf()), in the order asked. */
  private readonly asked: { dest: number; need: Need }[][];
  /** tiles[dest] by source: the source's rows [from, to) at dest's columns, transposed: [dest.count x (to - from)]. */
  private readonly tiles: Map<number, Float32Array>[];
  /** Bytes of the tiles asked for and not yet placed in their dest. */
  private heldBytes = 0;

  /** Each block's spans (symmetricColumns). */
  private readonly spans: Span[][];
  /** Block indices by first row. */
  private readonly byRow: number[];
  /**
   * Whether tiles are kept at all: not without a budget, nor for jobs of very many small blocks (an
   * R-operator job of a large batch may have one row a block), whose (source, dest) pairs would be
   * too many to track; their spans come from the file, as before.
   */
  private readonly tiled: boolean;

  constructor(
    private readonly blocks: readonly RowBlock[],
    spansOf: (block: RowBlock) => Span[],
    private readonly budgetBytes: number,
  ) {
    this.spans = blocks.map(spansOf);
    this.byRow = blocks.map((_, i) => i).sort((a, b) => blocks[a].row - blocks[b].row);
    this.tiled = budgetBytes > 0 && blocks.length <= MAX_TILED_BLOCKS;
    this.needs = blocks.map((_, dest) =>
      !this.tiled
        ? []
        : this.spans[dest].flatMap((span, spanIndex) =>
            this.overlapping(span).map((source) => ({
              source,
              from: Math.max(blocks[source].row, span.offset),
              to: Math.min(blocks[source].row + blocks[source].count, span.offset + span.count),
              span: spanIndex,
              partial: span.partial ?? false,
            })),
          ),
    );
    this.neededBy = blocks.map(() => []);
    this.needs.forEach((needs, dest) => needs.forEach((need) => this.neededBy[need.source].push({ dest, need })));
    this.asked = blocks.map(() => []);
    this.tiles = blocks.map(() => new Map());
  }

  /** The blocks whose rows overlap the span's (a binary search: blocks never overlap each other). */
  private overlapping(span: Span): number[] {
    const { blocks, byRow } = this;
    let low = 0;
    let high = byRow.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      const block = blocks[byRow[middle]];
      if (block.row + block.count <= span.offset) low = middle + 1;
      else high = middle;
    }
    const found: number[] = [];
    for (let i = low; i < byRow.length && blocks[byRow[i]].row < span.offset + span.count; i++) found.push(byRow[i]);
    return found;
  }

  /** Bytes of the tiles asked for and not yet placed (at most budgetBytes). */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Whether no tile waits for its dest. */
  get empty(): boolean {
    return this.tiles.every((tiles) => tiles.size === 0);
  }

  /**
   * The tiles to ask of a source block's thread with its rows, as far as the budget allows (counted
   * from now until placed): for each later block that needs its rows, that block's rows (columns of
   * the source) and the source rows [from, to) it needs. Asked once per block.
   */
  tilesOf(source: number): Tile[] {
    if (!this.tiled || this.asked[source].length) return [];
    for (const { dest, need } of this.neededBy[source]) {
      const bytes = 4 * this.blocks[dest].count * (need.to - need.from);
      if (this.heldBytes + bytes > this.budgetBytes) continue;
      this.heldBytes += bytes;
      this.asked[source].push({ dest, need });
    }
    return this.asked[source].map(({ dest, need }) => ({ row: this.blocks[dest].row, count: this.blocks[dest].count, from: need.from, to: need.to }));
  }

  /** Whether a later block's fill may read this block's rows back from the matrix file (no tile kept for it). */
  readBack(source: number): boolean {
    return !this.tiled || this.asked[source].length < this.neededBy[source].length;
  }

  /** Keeps the tiles a source block's thread returned, in the order tilesOf() asked for them. */
  keep(source: number, tiles: readonly Float32Array[]): void {
    const asked = this.asked[source];
    if (tiles.length !== asked.length) throw new Error(`block ${source} came back with ${tiles.length} tiles of its transpose, not the ${asked.length} asked for`);
    asked.forEach(({ dest }, k) => this.tiles[dest].set(source, tiles[k]));
  }

  /** Whether dest's spans can be filled now: each source is kept in memory for it, or `written` (its rows are in the file). */
  ready(dest: number, written: (source: number) => boolean): boolean {
    if (!this.tiled) return this.spans[dest].every((span) => this.overlapping(span).every(written));
    return this.needs[dest].every((need) => this.tiles[dest].has(need.source) || written(need.source));
  }

  /**
   * Writes dest's span columns from the tiles kept for it into its rows ([count x size]) and drops the
   * tiles, each handed to `placed` once written; returns the parts of the spans not kept, to be read
   * from the file (a whole span when none of it was kept, so that the file's strip windows are shared as before).
   */
  async fill(dest: number, rows: Float32Array, placed?: (tile: Float32Array) => void): Promise<Span[]> {
    if (!this.tiled) return this.spans[dest];
    const size = rows.length / this.blocks[dest].count;
    const pace = new Pace();
    const { count } = this.blocks[dest];
    const fromFile: (Span & { span: number })[] = [];
    for (const need of this.needs[dest]) {
      const tile = this.tiles[dest].get(need.source);
      if (!tile) {
        const last = fromFile[fromFile.length - 1];
        if (last && last.span === need.span && last.offset + last.count === need.from) last.count += need.to - need.from;
        else fromFile.push({ offset: need.from, count: need.to - need.from, partial: need.partial, span: need.span });
        continue;
      }
      const width = need.to - need.from;
      for (let c = 0; c < count; c++) rows.set(tile.subarray(c * width, (c + 1) * width), c * size + need.from);
      this.heldBytes -= tile.byteLength;
      this.tiles[dest].delete(need.source);
      placed?.(tile);
      await pace.step(tile.length);
    }
    return fromFile.map(({ offset, count, partial }) => ({ offset, count, partial }));
  }
}

/** Floats fill() copies between two turns of the event loop (a few ms: /health and the streams answer meanwhile). */
const FLOATS_PER_TURN = 1 << 16;

/** Yields to the event loop once FLOATS_PER_TURN floats were copied since the last time. */
class Pace {
  private floats = 0;
  async step(floats: number): Promise<void> {
    this.floats += floats;
    if (this.floats < FLOATS_PER_TURN) return;
    this.floats = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

interface Need {
  source: number;
  from: number;
  to: number;
  /** Index of the span among dest's. */
  span: number;
  partial: boolean;
}
