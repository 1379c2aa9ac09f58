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

/** Source rows transposed together (see transposedTiles). */
const STRIP = 16;

/**
 * The tiles of the transpose of `rows` ([count x size], the block's first row `first`), each
 * [tile.count x (tile.to - tile.from)] row-major: tile[c, s] = rows[tile.from - first + s, tile.row + c].
 * Each is its own buffer, so that it can be moved to the main thread and dropped once placed. (A
 * transpose by the backend was no faster on tensorflow, and 6x slower on wasm.)
 */
export function transposedTiles(rows: Float32Array, first: number, size: number, tiles: readonly Tile[]): Float32Array[] {
  return tiles.map(({ row, count, from, to }) => {
    const width = to - from;
    const tile = new Float32Array(count * width);
    const base = (from - first) * size + row;
    // In strips of STRIP source rows: each tile row's piece of a strip is written whole (one element
    // at a time down a column was 6 ns an element, mostly cache misses).
    for (let s0 = 0; s0 < width; s0 += STRIP) {
      const s1 = Math.min(width, s0 + STRIP);
      for (let c = 0; c < count; c++) {
        const at = c * width;
        for (let s = s0; s < s1; s++) tile[at + s] = rows[base + s * size + c];
      }
    }
    return tile;
  });
}
