/** PNG pictures: heatmaps of /v1/hessian, a job's result and the GGN / Fisher; the spectral density plot. */
import { Canvas, loadImage } from '@napi-rs/canvas';
import { describe, expect, it } from 'vitest';
import { pollJob, rawBody, useApp } from './api-helpers.js';
import { curvatureCases } from './curvature-helpers.js';

const t = useApp();
const threeLayers = curvatureCases().find((c) => c.name === 'sigmoid_softplus_mse_3layers')!; // P = 59

/** Width and height from the IHDR chunk, read by the PNG specification (independent of any library). */
function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
  expect(bytes.subarray(bytes.length - 8, bytes.length - 4).toString('latin1')).toBe('IEND');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/** Decodes the PNG and counts its pixels by colour class: how many are strongly red, strongly blue, not white. */
async function pixels(bytes: Buffer) {
  const image = await loadImage(bytes);
  const canvas = new Canvas(image.width, image.height);
  const g = canvas.getContext('2d');
  g.drawImage(image, 0, 0);
  const { data } = g.getImageData(0, 0, image.width, image.height);
  let red = 0;
  let blue = 0;
  let nonWhite = 0;
  for (let p = 0; p < data.length; p += 4) {
    const [r, gr, b] = [data[p], data[p + 1], data[p + 2]];
    if (r > 150 && gr < 120 && b < 120) red++;
    if (b > 120 && r < 120) blue++;
    if (r < 250 || gr < 250 || b < 250) nonWhite++;
  }
  return { red, blue, nonWhite, total: data.length / 4 };
}

const png = (req: ReturnType<ReturnType<typeof t.http>['post']>) => req.set('accept', 'image/png').buffer(true).parse(rawBody);

describe('pictures', () => {
  it('/v1/hessian as a heatmap: 8 px per entry at P = 59, tensor boundaries, both signs coloured', async () => {
    const res = await png(t.http().post('/v1/hessian').send(threeLayers.request));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    // 59 entries x 8 px = 472 px of matrix, plus 150 px of names left, 110 px of colour bar right, 30 + 150 px top and bottom.
    expect(pngSize(res.body)).toEqual({ width: 150 + 472 + 110, height: 30 + 472 + 150 });
    const count = await pixels(res.body);
    expect(count.red).toBeGreaterThan(1000);
    expect(count.blue).toBeGreaterThan(1000);
    expect(count.nonWhite).toBeGreaterThan(0.2 * count.total);
  });

  it('a large matrix is downsampled to 512 x 512 block maxima', async () => {
    // 20-25-3 tanh MLP: P = 20*25 + 25 + 25*3 + 3 = 603 > 512.
    const body = {
      model: { inputShape: [20], seed: 3, layers: [{ type: 'dense', units: 25, activation: 'tanh' }, { type: 'dense', units: 3 }] },
      loss: 'meanSquaredError',
      data: { x: Array.from({ length: 4 }, (_, b) => Array.from({ length: 20 }, (_, i) => Math.sin(b + i))), y: Array.from({ length: 4 }, () => [1, 0, -1]) },
    };
    const res = await png(t.http().post('/v1/hessian').send(body));
    expect(res.status).toBe(200);
    expect(pngSize(res.body)).toEqual({ width: 150 + 512 + 110, height: 30 + 512 + 150 });
    expect((await pixels(res.body)).nonWhite).toBeGreaterThan(50_000);
  });

  it("a job's result as a heatmap", async () => {
    const created = await t.http().post('/v1/jobs').send(threeLayers.request);
    expect(created.status).toBe(202);
    await pollJob(t.http, created.body.id, (job) => job.status === 'succeeded');
    const res = await png(t.http().get(`/v1/jobs/${created.body.id}/result`) as never);
    expect(res.status).toBe(200);
    expect(pngSize(res.body)).toEqual({ width: 732, height: 652 });
  });

  it.each(['ggn', 'fisher'])('the %s as a heatmap (positive semi-definite: red diagonal)', async (quantity) => {
    const { request } = curvatureCases().find((c) => c.name === 'gelu_sparse_logits_wrt')!; // P = 25
    const res = await png(t.http().post('/v1/curvature').send({ ...request, quantity }));
    expect(res.status).toBe(200);
    // 25 entries x 20 px = 500 px.
    expect(pngSize(res.body)).toEqual({ width: 150 + 500 + 110, height: 30 + 500 + 150 });
    expect((await pixels(res.body)).red).toBeGreaterThan(1000);
  });

  it('the spectral density as a plot', async () => {
    const res = await png(t.http().post('/v1/curvature').send({ ...threeLayers.request, quantity: 'density', runs: 4, steps: 30 }));
    expect(res.status).toBe(200);
    expect(pngSize(res.body)).toEqual({ width: 720, height: 420 });
    const count = await pixels(res.body);
    expect(count.red).toBeGreaterThan(50); // the top eigenvalues' markers
    expect(count.blue).toBeGreaterThan(300); // the density curve
  });

  it('406 for image/png of a quantity without a picture', async () => {
    const res = await t.http().post('/v1/curvature').set('accept', 'image/png').send({ ...threeLayers.request, quantity: 'diagonal' });
    expect(res.status).toBe(406);
  });
});
