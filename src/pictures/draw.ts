import { Canvas, type SKRSContext2D } from '@napi-rs/canvas';

/** Shared drawing for the service's pictures (@napi-rs/canvas: Skia, prebuilt from the npm registry). */

export const FONT = '12px "DejaVu Sans", "Liberation Sans", Arial, sans-serif';

export function canvasOf(width: number, height: number): { canvas: Canvas; g: SKRSContext2D } {
  const canvas = new Canvas(width, height);
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, width, height);
  g.font = FONT;
  return { canvas, g };
}

/**
 * Symmetric logarithmic scale: t = sign(v) log(1 + |v|/c) / log(1 + max/c), in [-1, 1]. Linear below
 * c (max / 1e4), logarithmic above, so entries four decades apart stay visible.
 */
export function symlog(value: number, max: number): number {
  if (max <= 0) return 0;
  const c = max * 1e-4;
  return (Math.sign(value) * Math.log1p(Math.abs(value) / c)) / Math.log1p(max / c);
}

/** Diverging blue (-1) - white (0) - red (+1), as RGB bytes. */
export function diverging(t: number): [number, number, number] {
  const s = Math.max(-1, Math.min(1, t));
  const fade = (full: number) => Math.round(255 + (full - 255) * Math.abs(s));
  return s >= 0 ? [fade(178), fade(24), fade(43)] : [fade(33), fade(102), fade(172)];
}

/** A short number for labels. */
export const label = (v: number): string => (v === 0 ? '0' : Math.abs(v) >= 1e4 || Math.abs(v) < 1e-2 ? v.toExponential(1) : v.toPrecision(3));
