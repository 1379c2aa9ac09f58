import { tf } from './tf.js';

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

/**
 * The tiles of the transpose of `rows` ([count x size], the block's first row `first`), each
 * [tile.count x (tile.to - tile.from)] row-major: tile[c, s] = rows[tile.from - first + s, tile.row + c].
 * Made by the backend (one transpose of the columns the tiles span, then a slice per tile), several
 * times faster than a loop over the floats in JavaScript; each tile is its own buffer, so that it can
 * be moved to the main thread and dropped once placed.
 */
export function transposedTiles(rows: Float32Array, first: number, size: number, tiles: readonly Tile[]): Float32Array[] {
  if (!tiles.length) return [];
  const count = rows.length / size;
  const low = Math.min(...tiles.map((t) => t.row));
  const high = Math.max(...tiles.map((t) => t.row + t.count));
  const pieces = tf.tidy(() => {
    const columns = tf.slice(tf.tensor2d(rows, [count, size]), [0, low], [count, high - low]);
    const transposed = tf.transpose(columns); // [high - low, count]
    return tiles.map((t) => tf.slice(transposed, [t.row - low, t.from - first], [t.count, t.to - t.from]));
  });
  // Read outside the tidy, which would walk every float of arrays it returns, looking for tensors.
  try {
    return pieces.map((piece) => ownBuffer(piece.dataSync() as Float32Array));
  } finally {
    tf.dispose(pieces);
  }
}

/** `values` if it spans its whole buffer (which can then be moved), else a copy: the cpu backend's slices may be views of another tensor's buffer. */
const ownBuffer = (values: Float32Array) => (values.byteOffset === 0 && values.byteLength === values.buffer.byteLength ? values : values.slice());
