import { canvasOf, diverging, label, symlog } from './draw.js';

/** The pixel side of the matrix area: every entry at least 1 px, at most MAX_SIDE px in all. */
const MAX_SIDE = 512;
const LEFT = 150;
const TOP = 30;
const BOTTOM = 150;
const RIGHT = 110;

export interface TensorSpan {
  name: string;
  offset: number;
  size: number;
}

/** Reads rows [first, first + count) of the P x P matrix. */
export type RowReader = (first: number, count: number) => Promise<Float32Array>;

/** Width and height of the heatmap of a P x P matrix. */
export function heatmapSize(size: number): { width: number; height: number; side: number } {
  const side = size <= MAX_SIDE ? size * Math.floor(MAX_SIDE / size) : MAX_SIDE;
  return { width: LEFT + side + RIGHT, height: TOP + side + BOTTOM, side };
}

/**
 * A PNG heatmap of a symmetric matrix: symmetric log colour scale (blue negative, red positive),
 * grey lines at tensor boundaries, tensor names on both axes, and a colour bar. Past 512 rows each
 * pixel shows its block's entry of largest magnitude (block maxima, so isolated large entries stay
 * visible). Rows are read a chunk at a time: the matrix is never whole in memory.
 */
export async function heatmapPng(title: string, size: number, tensors: readonly TensorSpan[], readRows: RowReader): Promise<Buffer> {
  const { width, height, side } = heatmapSize(size);
  const cells = Math.min(size, side); // cells per axis
  const blockMax = new Float32Array(cells * cells); // signed value of largest magnitude per cell
  const cellOf = (i: number) => Math.min(cells - 1, Math.floor((i * cells) / size));
  const chunk = Math.max(1, Math.floor(262144 / size));
  for (let first = 0; first < size; first += chunk) {
    const count = Math.min(chunk, size - first);
    const rows = await readRows(first, count);
    for (let r = 0; r < count; r++) {
      const base = cellOf(first + r) * cells;
      for (let c = 0; c < size; c++) {
        const v = rows[r * size + c];
        const at = base + cellOf(c);
        if (Math.abs(v) > Math.abs(blockMax[at])) blockMax[at] = v;
      }
    }
  }
  let max = 0;
  for (const v of blockMax) max = Math.max(max, Math.abs(v));

  const { canvas, g } = canvasOf(width, height);
  const image = g.createImageData(side, side);
  const scale = side / cells;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const [r, gr, b] = diverging(symlog(blockMax[Math.floor(y / scale) * cells + Math.floor(x / scale)], max));
      const p = 4 * (y * side + x);
      image.data[p] = r;
      image.data[p + 1] = gr;
      image.data[p + 2] = b;
      image.data[p + 3] = 255;
    }
  }
  g.putImageData(image, LEFT, TOP);

  const at = (index: number) => (index / size) * side;
  g.strokeStyle = '#555555';
  g.lineWidth = 1;
  g.strokeRect(LEFT - 0.5, TOP - 0.5, side + 1, side + 1);
  g.fillStyle = '#000000';
  g.textBaseline = 'middle';
  for (const t of tensors) {
    if (t.offset > 0) {
      g.beginPath();
      g.moveTo(LEFT, TOP + at(t.offset) + 0.5);
      g.lineTo(LEFT + side, TOP + at(t.offset) + 0.5);
      g.moveTo(LEFT + at(t.offset) + 0.5, TOP);
      g.lineTo(LEFT + at(t.offset) + 0.5, TOP + side);
      g.stroke();
    }
    const middle = at(t.offset + t.size / 2);
    g.textAlign = 'right';
    g.fillText(t.name, LEFT - 6, TOP + middle, LEFT - 10);
    // Below the matrix, read bottom to top, ending at the matrix's edge.
    g.save();
    g.translate(LEFT + middle, TOP + side + 6);
    g.rotate(-Math.PI / 2);
    g.fillText(t.name, 0, 0, BOTTOM - 10);
    g.restore();
  }
  g.textAlign = 'left';
  g.textBaseline = 'alphabetic';
  g.fillText(`${title}  (P = ${size}${size > side ? `, ${cells} x ${cells} block maxima` : ''})`, LEFT, TOP - 10);

  // Colour bar: +max at the top, 0 in the middle, -max at the bottom, on the same symlog scale.
  const barX = LEFT + side + 20;
  for (let y = 0; y < side; y++) {
    const [r, gr, b] = diverging(1 - (2 * y) / (side - 1));
    g.fillStyle = `rgb(${r},${gr},${b})`;
    g.fillRect(barX, TOP + y, 16, 1);
  }
  g.fillStyle = '#000000';
  g.textBaseline = 'middle';
  const inverse = (t: number) => Math.sign(t) * max * 1e-4 * Math.expm1(Math.abs(t) * Math.log1p(1e4));
  for (const t of [1, 0.5, 0, -0.5, -1]) g.fillText(label(inverse(t)), barX + 22, TOP + ((1 - t) / 2) * (side - 1));
  return canvas.toBuffer('image/png');
}
