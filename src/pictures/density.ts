import { canvasOf, label } from './draw.js';

export const DENSITY_SIZE = { width: 720, height: 420 };
const MARGIN = { left: 70, right: 20, top: 30, bottom: 50 };
/** Decades of density shown below the peak on the log axis. */
const DECADES = 8;

/**
 * A PNG plot of a spectral density on a log scale (the quadrature's smoothed density over the grid),
 * with the largest eigenvalue estimates (the top Ritz values over the runs) marked as red lines.
 */
export function densityPng(title: string, grid: readonly number[], density: readonly number[], top: readonly number[]): Buffer {
  const { width, height } = DENSITY_SIZE;
  const { canvas, g } = canvasOf(width, height);
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const xMin = grid[0];
  const xMax = grid[grid.length - 1];
  const yMax = Math.log10(Math.max(...density, Number.MIN_VALUE));
  const yMin = yMax - DECADES;
  const px = (x: number) => MARGIN.left + ((x - xMin) / (xMax - xMin || 1)) * plotW;
  const py = (d: number) => MARGIN.top + (1 - (Math.max(Math.log10(Math.max(d, Number.MIN_VALUE)), yMin) - yMin) / DECADES) * plotH;

  g.strokeStyle = '#000000';
  g.strokeRect(MARGIN.left - 0.5, MARGIN.top - 0.5, plotW + 1, plotH + 1);
  g.fillStyle = '#000000';
  g.textAlign = 'center';
  for (let i = 0; i <= 4; i++) {
    const x = xMin + ((xMax - xMin) * i) / 4;
    g.fillText(label(x), px(x), height - MARGIN.bottom + 16);
  }
  g.fillText('eigenvalue', MARGIN.left + plotW / 2, height - 12);
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let e = Math.ceil(yMin); e <= Math.floor(yMax); e += 2) g.fillText(`1e${e}`, MARGIN.left - 6, py(10 ** e));
  g.textAlign = 'left';
  g.textBaseline = 'alphabetic';
  g.fillText(title, MARGIN.left, MARGIN.top - 10);

  g.strokeStyle = '#d62728';
  g.setLineDash([5, 4]);
  for (const value of top) {
    g.beginPath();
    g.moveTo(px(value), MARGIN.top);
    g.lineTo(px(value), MARGIN.top + plotH);
    g.stroke();
  }
  g.setLineDash([]);
  g.fillStyle = '#d62728';
  g.textAlign = 'right';
  g.fillText(`top: ${top.map(label).join(', ')}`, MARGIN.left + plotW - 4, MARGIN.top + 14);

  g.strokeStyle = '#1f77b4';
  g.lineWidth = 1.5;
  g.beginPath();
  grid.forEach((x, i) => (i === 0 ? g.moveTo(px(x), py(density[i])) : g.lineTo(px(x), py(density[i]))));
  g.stroke();
  return canvas.toBuffer('image/png');
}

/** The k largest distinct Ritz values over all runs (to 1e-6 relative). */
export function topNodes(nodes: readonly (readonly number[])[], k: number): number[] {
  const sorted = nodes.flat().sort((a, b) => b - a);
  const top: number[] = [];
  for (const v of sorted) {
    if (top.length === k) break;
    if (!top.some((t) => Math.abs(t - v) <= 1e-6 * Math.max(Math.abs(t), 1e-30))) top.push(v);
  }
  return top;
}
