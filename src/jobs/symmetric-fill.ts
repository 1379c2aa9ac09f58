import type { RowBlock, Span } from '../compute/index.js';

/**
 * The symmetric fill of a running job from memory. A block's rows come back upper-only: the columns
 * its spans name (symmetricColumns) are 0 and equal, by symmetry, the same block's columns in rows
 * computed before. Instead of reading those back from the matrix file (one read per earlier row and
 * block: about a million reads at P = 19158, which held the main thread for seconds), the transposes of
 * every block's rows are kept, as soon as the block is back, in tiles for the later blocks that need
 * them, and dropped once those are filled. What is held at once is at most the values between the rows
 * done and the rows to come, about P²/4 floats (400 MB at P = 20000): within `budgetBytes` the tiles are
 * kept; a tile that would pass it is not, and its values are read from the file as before.
 */
/** Source rows transposed together (see keep). */
const TRANSPOSE_STRIP = 16;

export class SymmetricFill {
  /** needs[dest]: the source blocks whose rows dest's spans name, each with the rows [from, to) of it in the span. */
  private readonly needs: Need[][];
  /** The same, by source: the later blocks that need each block's rows. */
  private readonly neededBy: { dest: number; need: Need }[][];
  /** tiles[dest] by source: the source's rows [from, to) at dest's columns, transposed: [dest.count x (to - from)]. */
  private readonly tiles: Map<number, Float32Array>[];
  /** Bytes of the tiles waiting for their dest. */
  private heldBytes = 0;
  /** Tiles already copied into their dest, by length, for reuse: allocating (and collecting) hundreds of MB of tiles cost the main thread about as much as copying them. */
  private readonly spare = new Map<number, Float32Array[]>();
  private spareBytes = 0;

  constructor(
    private readonly blocks: readonly RowBlock[],
    spansOf: (block: RowBlock) => Span[],
    private readonly size: number,
    private readonly budgetBytes: number,
  ) {
    this.needs = blocks.map((block) =>
      spansOf(block).flatMap((span, spanIndex) =>
        blocks.flatMap((source, index) => {
          const from = Math.max(source.row, span.offset);
          const to = Math.min(source.row + source.count, span.offset + span.count);
          return from < to ? [{ source: index, from, to, span: spanIndex, partial: span.partial ?? false }] : [];
        }),
      ),
    );
    this.neededBy = blocks.map(() => []);
    this.needs.forEach((needs, dest) => needs.forEach((need) => this.neededBy[need.source].push({ dest, need })));
    this.tiles = blocks.map(() => new Map());
  }

  /** Bytes held now: tiles waiting, and tiles kept for reuse (at most budgetBytes together). */
  get bytes(): number {
    return this.heldBytes + this.spareBytes;
  }

  /** Whether no tile waits for its dest. */
  get empty(): boolean {
    return this.tiles.every((tiles) => tiles.size === 0);
  }

  /** A tile of `length` floats, reused or new, or null when it would pass the budget. */
  private tile(length: number): Float32Array | null {
    const reused = this.spare.get(length)?.pop();
    if (reused) {
      this.spareBytes -= reused.byteLength;
      return reused;
    }
    if (this.heldBytes + this.spareBytes + 4 * length > this.budgetBytes) {
      this.spare.clear(); // tiles of other lengths give their room
      this.spareBytes = 0;
    }
    return this.heldBytes + 4 * length > this.budgetBytes ? null : new Float32Array(length);
  }

  /**
   * Keeps the transposes of a block's rows (just computed, upper-only) for the later blocks that need
   * them, as far as the budget allows; a tile is ready for ready() once whole.
   */
  async keep(source: number, rows: Float32Array): Promise<void> {
    const { size } = this;
    const first = this.blocks[source].row;
    const pace = new Pace();
    for (const { dest, need } of this.neededBy[source]) {
      const { row, count } = this.blocks[dest];
      const width = need.to - need.from;
      const tile = this.tile(count * width);
      if (!tile) continue;
      // In strips of TRANSPOSE_STRIP source rows: each tile row's piece of a strip is written whole
      // (one element at a time down a column was 6 ns an element, mostly cache misses).
      for (let s0 = 0; s0 < width; s0 += TRANSPOSE_STRIP) {
        const s1 = Math.min(width, s0 + TRANSPOSE_STRIP);
        const base = (need.from - first) * size + row;
        for (let c = 0; c < count; c++) {
          const to = c * width;
          for (let s = s0; s < s1; s++) tile[to + s] = rows[base + s * size + c];
        }
      }
      this.tiles[dest].set(source, tile);
      this.heldBytes += tile.byteLength;
      await pace.step(tile.length);
    }
  }

  /** Whether dest's spans can be filled now: each source is kept in memory for it, or `written` (its rows are in the file). */
  ready(dest: number, written: (source: number) => boolean): boolean {
    return this.needs[dest].every((need) => this.tiles[dest].has(need.source) || written(need.source));
  }

  /**
   * Writes dest's span columns from the tiles kept for it into its rows ([count x size]) and drops the
   * tiles; returns the parts of the spans not kept, to be read from the file (a whole span when none of
   * it was kept, so that the file's strip windows are shared as before).
   */
  async fill(dest: number, rows: Float32Array): Promise<Span[]> {
    const { size } = this;
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
      const spares = this.spare.get(tile.length);
      if (spares) spares.push(tile);
      else this.spare.set(tile.length, [tile]);
      this.spareBytes += tile.byteLength;
      await pace.step(tile.length);
    }
    return fromFile.map(({ offset, count, partial }) => ({ offset, count, partial }));
  }
}

/** Floats keep() and fill() copy between two turns of the event loop (a few ms: /health and the streams answer meanwhile). */
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
