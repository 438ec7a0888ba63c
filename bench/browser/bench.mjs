// On-device benchmark (issue #6): in one headless Chromium page on the AutoLearn server's
// origin, the same model (EfficientNet-Lite0, 3 classes, 224 px) under
//   - ours: the `infer` wasm module (burn) on WebGPU and on the CPU (wasm, SIMD, one thread);
//   - the peer: onnxruntime-web on its WebGPU and wasm (SIMD, one thread) backends;
// each timed per image from the encoded image to the probabilities (decode, resize,
// normalise, forward, softmax), RUNS times after one warm-up, and model-only (ours from
// 224 px RGBA, the peer from the prepared tensor); load time is from the request for the
// model to the end of the first (warm-up) answer. Prints JSON.
//
// A detector (SIDE 320, the graph of onnx_lite0.py's `detector` mode) is timed the same way
// to its boxes: the peer decodes and suppresses in JS what ours does in Rust (scores
// `sqrt(sigmoid(class) * sigmoid(centre-ness))` at or above THRESHOLD, class-wise
// suppression at IoU 0.6).
//
// Env: BASE_URL, ADMIN_PASSWORD, MODEL (id), ONNX (path), IMAGE (path), RUNS (default 20),
// SIDE (default 224), THRESHOLD (default 0.3).
import { readFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const { BASE_URL, ADMIN_PASSWORD, MODEL, ONNX, IMAGE } = process.env;
const RUNS = Number(process.env.RUNS ?? 20);
const SIDE = Number(process.env.SIDE ?? 224);
const THRESHOLD = Number(process.env.THRESHOLD ?? 0.3);
const ORT_DIST = join(here, "node_modules", "onnxruntime-web", "dist");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-unsafe-webgpu",
    "--disable-background-networking", "--disable-component-update"],
});
const context = await browser.newContext();
const login = await context.request.post(`${BASE_URL}/api/auth/login`, { data: { username: "admin", password: ADMIN_PASSWORD } });
if (login.status() !== 200) throw new Error(`login: ${login.status()}`);
const page = await context.newPage();
page.on("console", (m) => console.error(`[page] ${m.text()}`));
// The peer's files, served on the same origin under /__bench/.
await page.route(`${BASE_URL}/__bench/**`, async (route) => {
  const name = new URL(route.request().url()).pathname.replace("/__bench/", "");
  if (name === "index.html") return route.fulfill({ contentType: "text/html", body: "<!doctype html><title>bench</title>" });
  if (name === "model.onnx") return route.fulfill({ contentType: "application/octet-stream", body: await readFile(ONNX) });
  if (name === "image") return route.fulfill({ contentType: "application/octet-stream", body: await readFile(IMAGE) });
  const type = name.endsWith(".wasm") ? "application/wasm" : "text/javascript";
  return route.fulfill({ contentType: type, body: await readFile(join(ORT_DIST, name)) });
});
await page.goto(`${BASE_URL}/__bench/index.html`);

const results = await page.evaluate(async ({ model, runs, side, threshold }) => {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const image = new Uint8Array(await (await fetch("/__bench/image")).arrayBuffer());
  const out = { webgpu_adapter: !!(navigator.gpu && (await navigator.gpu.requestAdapter())) };
  // The image already at the model's side as RGBA, for the model-only figures (no decode,
  // no resize).
  const small = new OffscreenCanvas(side, side).getContext("2d", { willReadFrequently: true });
  small.drawImage(await createImageBitmap(new Blob([image])), 0, 0, side, side);
  const rgbaSide = new Uint8Array(small.getImageData(0, 0, side, side).data.buffer);
  async function timed(f) {
    const times = [];
    for (let i = 0; i < runs; i++) {
      const s = performance.now();
      await f();
      times.push(performance.now() - s);
    }
    return times;
  }

  // Ours.
  const infer = await import("/infer/infer.js");
  await infer.default();
  const artifact = await fetch(`/api/models/${model}/artifact?format=web`);
  const transferred = Number(artifact.headers.get("content-length"));
  const artifactBytes = new Uint8Array(await artifact.arrayBuffer());
  out.artifact = { transferred_bytes: transferred, bytes: artifactBytes.length };
  for (const backend of ["webgpu", "cpu"]) {
    const t0 = performance.now();
    const bytes = new Uint8Array(await (await fetch(`/api/models/${model}/artifact?format=web`)).arrayBuffer());
    const c = await infer.Classifier.load(bytes, backend);
    const load = performance.now() - t0;
    await c.classifyImage(image);
    const times = await timed(() => c.classifyImage(image));
    const modelTimes = await timed(() => c.classifyRgba(rgbaSide, side, side));
    out[`ours_${backend}`] = { load_ms: load, per_image_ms: median(times), min_ms: Math.min(...times), model_only_ms: median(modelTimes) };
    c.free();
  }

  // The peer: onnxruntime-web, decoding with the browser and normalising in JS.
  const ort = await import("/__bench/ort.all.min.mjs");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = "/__bench/";
  const MEAN = [0.485, 0.456, 0.406];
  const STD = [0.229, 0.224, 0.225];
  const canvas = new OffscreenCanvas(side, side);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const area = side * side;
  async function prepare() {
    const bitmap = await createImageBitmap(new Blob([image]));
    ctx.drawImage(bitmap, 0, 0, side, side);
    const px = ctx.getImageData(0, 0, side, side).data;
    const x = new Float32Array(3 * area);
    for (let i = 0; i < area; i++) {
      for (let c = 0; c < 3; c++) x[c * area + i] = (px[i * 4 + c] / 255 - MEAN[c]) / STD[c];
    }
    return new ort.Tensor("float32", x, [1, 3, side, side]);
  }
  // A detector's grid (shared::detect::points) and its boxes from `[classes + 5, points]`.
  const points = [];
  for (let level = 0, s = side; level < 5; level++) {
    s = Math.ceil(s / 2);
    if (level < 2) continue;
    const stride = 8 << (level - 2);
    for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) points.push([(x + 0.5) * stride, (y + 0.5) * stride]);
  }
  const sigmoid = (v) => 1 / (1 + Math.exp(-v));
  function boxes(y, classes) {
    const n = points.length;
    const cands = [];
    for (let i = 0; i < n; i++) {
      const q = sigmoid(y[(classes + 4) * n + i]);
      for (let c = 0; c < classes; c++) {
        const score = Math.sqrt(sigmoid(y[c * n + i]) * q);
        if (score < threshold) continue;
        const [px, py] = points[i];
        const clip = (v) => Math.min(side, Math.max(0, v));
        cands.push({ c, score, r: [clip(px - y[classes * n + i]), clip(py - y[(classes + 1) * n + i]),
          clip(px + y[(classes + 2) * n + i]), clip(py + y[(classes + 3) * n + i])] });
      }
    }
    cands.sort((a, b) => b.score - a.score);
    const iou = (a, b) => {
      const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
      const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
      const u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h;
      return u > 0 ? (w * h) / u : 0;
    };
    const kept = [];
    for (const d of cands.slice(0, 1000)) {
      if (kept.length >= 100) break;
      if (kept.every((k) => k.c !== d.c || iou(k.r, d.r) <= 0.6)) kept.push(d);
    }
    return kept;
  }
  for (const [ep, name] of [["webgpu", "webgpu"], ["wasm", "cpu"]]) {
    try {
      const t0 = performance.now();
      const session = await ort.InferenceSession.create("/__bench/model.onnx", { executionProviders: [ep] });
      const run = async () => {
        const out = (await session.run({ x: await prepare() })).y;
        const y = out.data;
        if (out.dims.length === 3) return boxes(y, out.dims[1] - 5);
        const m = Math.max(...y);
        const e = Array.from(y, (v) => Math.exp(v - m));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((v) => v / s);
      };
      await run();
      const load = performance.now() - t0;
      const times = await timed(run);
      const x = await prepare();
      const modelTimes = await timed(() => session.run({ x }));
      out[`ort_${name}`] = { load_ms: load, per_image_ms: median(times), min_ms: Math.min(...times), model_only_ms: median(modelTimes) };
      await session.release();
    } catch (e) {
      out[`ort_${name}`] = { error: String(e) };
    }
  }
  return out;
}, { model: Number(MODEL), runs: RUNS, side: SIDE, threshold: THRESHOLD });

for (const b of ["webgpu", "cpu"]) {
  const ours = results[`ours_${b}`];
  const peer = results[`ort_${b}`];
  if (ours?.per_image_ms && peer?.per_image_ms) results[`ratio_${b}`] = ours.per_image_ms / peer.per_image_ms;
}
console.log(JSON.stringify(results, null, 2));
await browser.close();
