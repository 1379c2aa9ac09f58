/**
 * A piece of the transpose of a row block, for the symmetric fill of a later block: that block's
 * `count` rows from `row` (columns of the source block), at the source's rows [from, to) (matrix
 * row indices, within the source block).
 */
export interface Tile {
  row: number;
  count: number;
  from: number;
  to: number;
}

/** A view of the first `length` floats of a spare buffer when it has room for them, else null. */
export const spareView = (into: ArrayBuffer | null | undefined, length: number): Float32Array | null =>
  into && into.byteLength >= 4 * length ? new Float32Array(into, 0, length) : null;

/**
 * The tiles of the transpose of `rows` ([count x size], the block's first row `first`), each
 * [tile.count x (tile.to - tile.from)] row-major: tile[c, s] = rows[tile.from - first + s, tile.row + c].
 * Each is its own buffer, so that it can be moved to the main thread and dropped once placed; tile k
 * is a view of `into[k]` when that is given and large enough (every value is written). (A transpose
 * by the backend was no faster on tensorflow, and 6x slower on wasm.)
 */
export function transposedTiles(rows: Float32Array, first: number, size: number, tiles: readonly Tile[], into: readonly (ArrayBuffer | null)[] = []): Float32Array[] {
  return tiles.map(({ row, count, from, to }, k) => {
    const width = to - from;
    const tile = spareView(into[k], count * width) ?? new Float32Array(count * width);
    const base = (from - first) * size + row;
    // In strips of 8 source rows, each tile row's piece of a strip written whole from 8 loads held in
    // locals (1.0 ns an element; the same strips as an inner loop of 16 were 1.5 ns, and one element at
    // a time down a column 6 ns, mostly cache misses).
    // (Plain locals: destructuring them from arrays made this loop 2.5x slower.)
    let s0 = 0;
    for (; s0 + 8 <= width; s0 += 8) {
      const r0 = base + s0 * size;
      const r1 = r0 + size;
      const r2 = r1 + size;
      const r3 = r2 + size;
      const r4 = r3 + size;
      const r5 = r4 + size;
      const r6 = r5 + size;
      const r7 = r6 + size;
      for (let c = 0, at = s0; c < count; c++, at += width) {
        const v0 = rows[r0 + c];
        const v1 = rows[r1 + c];
        const v2 = rows[r2 + c];
        const v3 = rows[r3 + c];
        const v4 = rows[r4 + c];
        const v5 = rows[r5 + c];
        const v6 = rows[r6 + c];
        const v7 = rows[r7 + c];
        tile[at] = v0;
        tile[at + 1] = v1;
        tile[at + 2] = v2;
        tile[at + 3] = v3;
        tile[at + 4] = v4;
        tile[at + 5] = v5;
        tile[at + 6] = v6;
        tile[at + 7] = v7;
      }
    }
    for (; s0 < width; s0++) for (let c = 0; c < count; c++) tile[c * width + s0] = rows[base + s0 * size + c];
    return tile;
  });
}
