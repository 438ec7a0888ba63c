// On-device benchmark (issue #6): in one headless Chromium page on the AutoLearn server's
// origin, the same model (EfficientNet-Lite0, 3 classes, 224 px) under
//   - ours: the `infer` wasm module (burn) on WebGPU and on the CPU (wasm, SIMD, one thread);
//   - the peer: onnxruntime-web on its WebGPU and wasm (SIMD, one thread) backends;
// each timed per image from the encoded image to the probabilities (decode, resize,
// normalise, forward, softmax), RUNS times after one warm-up, and model-only (ours from
// 224 px RGBA, the peer from the prepared tensor); load time is from the request for the
// model to the end of the first (warm-up) answer. Prints JSON.
//
// Env: BASE_URL, ADMIN_PASSWORD, MODEL (id), ONNX (path), IMAGE (path), RUNS (default 20).
import { readFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const { BASE_URL, ADMIN_PASSWORD, MODEL, ONNX, IMAGE } = process.env;
const RUNS = Number(process.env.RUNS ?? 20);
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

const results = await page.evaluate(async ({ model, runs }) => {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const image = new Uint8Array(await (await fetch("/__bench/image")).arrayBuffer());
  const out = { webgpu_adapter: !!(navigator.gpu && (await navigator.gpu.requestAdapter())) };
  // The image already at 224 px as RGBA, for the model-only figures (no decode, no resize).
  const small = new OffscreenCanvas(224, 224).getContext("2d", { willReadFrequently: true });
  small.drawImage(await createImageBitmap(new Blob([image])), 0, 0, 224, 224);
  const rgba224 = new Uint8Array(small.getImageData(0, 0, 224, 224).data.buffer);
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
    const modelTimes = await timed(() => c.classifyRgba(rgba224, 224, 224));
    out[`ours_${backend}`] = { load_ms: load, per_image_ms: median(times), min_ms: Math.min(...times), model_only_ms: median(modelTimes) };
    c.free();
  }

  // The peer: onnxruntime-web, decoding with the browser and normalising in JS.
  const ort = await import("/__bench/ort.all.min.mjs");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = "/__bench/";
  const MEAN = [0.485, 0.456, 0.406];
  const STD = [0.229, 0.224, 0.225];
  const canvas = new OffscreenCanvas(224, 224);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  async function prepare() {
    const bitmap = await createImageBitmap(new Blob([image]));
    ctx.drawImage(bitmap, 0, 0, 224, 224);
    const px = ctx.getImageData(0, 0, 224, 224).data;
    const x = new Float32Array(3 * 224 * 224);
    for (let i = 0; i < 224 * 224; i++) {
      for (let c = 0; c < 3; c++) x[c * 224 * 224 + i] = (px[i * 4 + c] / 255 - MEAN[c]) / STD[c];
    }
    return new ort.Tensor("float32", x, [1, 3, 224, 224]);
  }
  for (const [ep, name] of [["webgpu", "webgpu"], ["wasm", "cpu"]]) {
    try {
      const t0 = performance.now();
      const session = await ort.InferenceSession.create("/__bench/model.onnx", { executionProviders: [ep] });
      const run = async () => {
        const y = (await session.run({ x: await prepare() })).y.data;
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
}, { model: Number(MODEL), runs: RUNS });

for (const b of ["webgpu", "cpu"]) {
  const ours = results[`ours_${b}`];
  const peer = results[`ort_${b}`];
  if (ours?.per_image_ms && peer?.per_image_ms) results[`ratio_${b}`] = ours.per_image_ms / peer.per_image_ms;
}
console.log(JSON.stringify(results, null, 2));
await browser.close();
