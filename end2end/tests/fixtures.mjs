// Test images written by the tests themselves: a tiny PNG encoder (RGB, 8 bits, no
// interlace) on Node's zlib, and helpers that lay out datasets the way SPEC §3 describes.

import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "ascii");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes `width`×`height` RGB pixels from `pixel(x, y) -> [r, g, b]` as a PNG file. */
export function encodePng(width, height, pixel) {
  const stride = width * 3 + 1;
  const raw = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    raw[y * stride] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      const o = y * stride + 1 + x * 3;
      raw[o] = r;
      raw[o + 1] = g;
      raw[o + 2] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 6 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A hue for `seed` (0..1) as RGB. */
function hue(seed) {
  const h = (seed % 1) * 6;
  const x = 1 - Math.abs((h % 2) - 1);
  const [r, g, b] = h < 1 ? [1, x, 0] : h < 2 ? [x, 1, 0] : h < 3 ? [0, 1, x] : h < 4 ? [0, x, 1] : h < 5 ? [x, 0, 1] : [1, 0, x];
  return [r, g, b];
}

/**
 * A distinct picture for `seed`: a flat background, a disc and a band in other hues, so
 * thumbnails are told apart at a glance. Flat colours keep the files, and screenshots of
 * them, small.
 */
export function picture(width, height, seed) {
  // Soft colours: each hue mixed with grey.
  const [bg, disc, band] = [
    [0, 150, 85],
    [0.33, 95, 120],
    [0.66, 70, 110],
  ].map(([o, base, span]) => hue(seed * 0.618 + o).map((v) => Math.round(base + span * v)));
  const cx = width * (0.3 + ((seed * 37) % 40) / 100);
  const cy = height * (0.35 + ((seed * 53) % 30) / 100);
  const radius = Math.min(width, height) * 0.22;
  const bandY = height * (0.15 + ((seed * 29) % 60) / 100);
  const bandH = Math.max(4, height * 0.08);
  return encodePng(width, height, (x, y) => {
    if (Math.hypot(x - cx, y - cy) < radius) return disc;
    if (y >= bandY && y < bandY + bandH) return band;
    return bg;
  });
}

export async function writeFileIn(root, relative, bytes) {
  const path = join(root, relative);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  return path;
}

/**
 * A classification dataset: `cat/` and `dog/` folders, unlabelled images at the root and
 * one corrupt file. Returns the counts the indexer should report.
 */
export async function classificationSet(root) {
  let seed = 1;
  const labelled = { cat: 3, dog: 2 };
  for (const [label, n] of Object.entries(labelled)) {
    for (let i = 1; i <= n; i++) {
      await writeFileIn(root, `${label}/${label}${i}.png`, picture(96 + i * 8, 80 + i * 4, seed++));
    }
  }
  const unlabelled = 6;
  for (let i = 1; i <= unlabelled; i++) {
    await writeFileIn(root, `u${i}.png`, picture(100, 90 + i, seed++));
  }
  await writeFileIn(root, "cat/broken.png", Buffer.from("this is not a png at all"));
  return { total: 5 + unlabelled, labelled: 5, unlabelled, skipped: ["cat/broken.png"] };
}

/** Images for detection or OCR (PNG is accepted there too); `big` adds a 2000×1500 one. */
export async function boxSet(root, names, { width = 640, height = 480, big = false } = {}) {
  let seed = 11;
  for (const name of names) await writeFileIn(root, name, picture(width, height, seed++));
  if (big) await writeFileIn(root, "zz-big.png", picture(2000, 1500, 99));
}

/** `n` unlabelled images for the thumbnail benchmark. */
export async function manyImages(root, n) {
  for (let i = 0; i < n; i++) {
    await writeFileIn(root, `img${String(i).padStart(3, "0")}.png`, picture(160, 120, 200 + i));
  }
}

/**
 * A one-picture YUV4MPEG2 video of an image (4:2:0, BT.601 studio range), for Chromium's fake
 * camera: RGBA pixels from `page`'s decoder.
 */
export async function y4mOf(page, file, out) {
  const { w, h, rgba } = await page.evaluate(async (b64) => {
    const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
    const bmp = await createImageBitmap(blob);
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext("2d");
    ctx.drawImage(bmp, 0, 0);
    return { w: bmp.width, h: bmp.height, rgba: Array.from(ctx.getImageData(0, 0, bmp.width, bmp.height).data) };
  }, (await readFile(file)).toString("base64"));
  assert.ok(w % 2 === 0 && h % 2 === 0, "even sides for 4:2:0");
  const px = (x, y) => rgba.slice((y * w + x) * 4, (y * w + x) * 4 + 3);
  const clamp = (v) => Math.max(0, Math.min(255, Math.round(v)));
  const y = Buffer.alloc(w * h), u = Buffer.alloc((w * h) / 4), v = Buffer.alloc((w * h) / 4);
  for (let j = 0; j < h; j++) {
    for (let i = 0; i < w; i++) {
      const [r, g, b] = px(i, j);
      y[j * w + i] = clamp(16 + 0.257 * r + 0.504 * g + 0.098 * b);
    }
  }
  for (let j = 0; j < h / 2; j++) {
    for (let i = 0; i < w / 2; i++) {
      let [r, g, b] = [0, 0, 0];
      for (const [di, dj] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const p = px(2 * i + di, 2 * j + dj);
        r += p[0] / 4; g += p[1] / 4; b += p[2] / 4;
      }
      u[j * (w / 2) + i] = clamp(128 - 0.148 * r - 0.291 * g + 0.439 * b);
      v[j * (w / 2) + i] = clamp(128 + 0.439 * r - 0.368 * g - 0.071 * b);
    }
  }
  const frame = Buffer.concat([Buffer.from("FRAME\n"), y, u, v]);
  await writeFile(out, Buffer.concat([Buffer.from(`YUV4MPEG2 W${w} H${h} F10:1 Ip A1:1 C420jpeg\n`), frame, frame]));
}
