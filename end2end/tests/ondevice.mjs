// On-device preview (SPEC §6) in headless Chromium against a running server:
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_PASSWORD=... DATA_DIR=... npm test
//
// Trains the shapes demo at 224 px through the API (one epoch) and deploys it, then:
// - the try page runs the model in the browser on 20 of the demo's images, first on WebGPU
//   (Chromium's SwiftShader adapter, --enable-unsafe-webgpu), then in a browser without
//   WebGPU (the CPU fallback, chosen by itself), and each answer must have the same top-1
//   label as POST /api/predict, every confidence within 1e-3;
// - the publish page makes a preview link and shows its QR code;
// - the preview link, opened with no login as a phone would, with Chromium's fake camera shows
//   predictions that keep updating, and frames per second; without a camera, a photo picker;
// - expired, forged and revoked links get a page that says so, and their artifact URL 403.
// Model load time and per-image time on both backends go to docs/benchmarks-ondevice.json;
// bench/browser.sh runs the same model under onnxruntime-web as the peer.
// Leaves docs/screenshots/{try,publish,preview}-{desktop,phone}.png.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { SCREENSHOTS, RESULTS, DOCS, BASE_URL, ADMIN_PASSWORD, DESKTOP, PHONE, LAUNCH } from "./env.mjs";

const RUN = Date.now().toString(36);
const LABELS = ["circle", "square", "triangle"];
const DATA_DIR = process.env.DATA_DIR;
const IMAGES = 20;
/** How long training may take on a CPU-only test machine. */
const TRAINING_MS = 6 * 60_000;
const WEBGPU = { ...LAUNCH, args: [...LAUNCH.args, "--enable-unsafe-webgpu"] };
const CAMERA = {
  ...LAUNCH,
  args: [...LAUNCH.args, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
};

const id = (testid) => `[data-testid="${testid}"]`;
const browsers = [];
const made = {};
const figures = {};

async function api(method, path, body, token = made.token) {
  const res = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (_) { /* not JSON */ }
  return { status: res.status, json, text };
}

/** A page in a new browser launched with `options`, logged in unless `anonymous`. */
async function openPage(options, viewport = DESKTOP, anonymous = false) {
  const browser = await chromium.launch(options);
  browsers.push(browser);
  const context = await browser.newContext({ viewport, permissions: ["camera"] });
  if (!anonymous) {
    const login = await context.request.post(`${BASE_URL}/api/auth/login`, {
      data: { username: "admin", password: ADMIN_PASSWORD },
    });
    assert.equal(login.status(), 200);
  }
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /panicked/.test(msg.text())) errors.push(msg.text());
  });
  return { browser, context, page, errors };
}

before(async () => {
  assert.ok(ADMIN_PASSWORD, "set ADMIN_PASSWORD to the admin password of the server under test");
  assert.ok(DATA_DIR, "set DATA_DIR to the server's data directory (the demo images live there)");
  await mkdir(SCREENSHOTS, { recursive: true });
  await mkdir(RESULTS, { recursive: true });
});

after(async () => {
  for (const b of browsers) await b.close().catch(() => {});
});

test("a shapes model is trained and deployed through the API", { timeout: TRAINING_MS + 120_000 }, async () => {
  const login = await api("POST", "/api/auth/login", { username: "admin", password: ADMIN_PASSWORD }, null);
  assert.equal(login.status, 200, login.text);
  made.token = login.json.token;
  const inst = await api("POST", "/api/instances", { template: "shapes" });
  assert.equal(inst.status, 201, inst.text);
  made.instance = inst.json.id;
  const ds = (await api("GET", `/api/instances/${made.instance}/datasets`)).json[0];
  const task = await api("POST", `/api/instances/${made.instance}/tasks`, {
    name: `ondevice-${RUN}`, dataset_id: ds.id, labels: LABELS, preset: "classification-fast",
    device: "cpu", max_minutes: 5, max_epochs: 1, seed: 3,
  });
  assert.equal(task.status, 201, task.text);
  const t0 = Date.now();
  let t;
  do {
    await new Promise((r) => setTimeout(r, 1000));
    t = (await api("GET", `/api/tasks/${task.json.id}`)).json;
    assert.ok(Date.now() - t0 < TRAINING_MS, `training took too long: ${JSON.stringify(t)}`);
  } while (t.status === "queued" || t.status === "running");
  assert.equal(t.status, "succeeded", JSON.stringify(t));
  made.model = t.model_id;
  made.service = `ondevice-${RUN}`;
  const svc = await api("POST", `/api/models/${made.model}/services`, { name: made.service, replicas: 1 });
  assert.equal(svc.status, 201, svc.text);
  made.serviceToken = svc.json.token;
  // 20 of the demo's images, every label.
  const dir = join(DATA_DIR, "templates", `instance-${made.instance}`);
  made.images = [];
  for (const label of LABELS) {
    const files = (await readdir(join(dir, label))).filter((f) => f.endsWith(".png")).sort();
    made.images.push(...files.slice(-7).map((f) => join(dir, label, f)));
  }
  made.images = made.images.slice(0, IMAGES);
  assert.equal(made.images.length, IMAGES);
});

/** The predict API's answer for an image file: the body of its one output. */
async function served(file) {
  const body = JSON.stringify({ dataArray: [{ name: "image", type: "stream", body: (await readFile(file)).toString("base64") }] });
  for (let tries = 0; ; tries++) {
    const res = await fetch(`${BASE_URL}/api/predict/${made.service}`, {
      method: "POST",
      headers: { authorization: made.serviceToken, "content-type": "application/json" },
      body,
    });
    const json = await res.json();
    // 2002 while the service is still loading its model.
    if (json.success) return json.result.output[0].body;
    assert.ok(tries < 120 && json.errorCode === "2002", JSON.stringify(json));
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Runs the try page on every image; checks each answer against the predict API. */
async function tryPage(options, query, expectBackend) {
  const { page, errors } = await openPage(options);
  await page.goto(`${BASE_URL}/models/${made.model}/try${query}`);
  const ready = page.locator(id("runtime-ready"));
  await ready.waitFor({ timeout: 120_000 });
  assert.equal(await ready.getAttribute("data-backend"), expectBackend);
  const loadMs = Number((await page.locator(id("runtime-load-ms")).textContent()).replace(/[^0-9.]/g, ""));
  const times = [];
  for (const [i, file] of made.images.entries()) {
    await page.locator(id("try-file")).setInputFiles(file);
    await page.locator(`${id("try-answer")}[data-runs="${i + 1}"]`).waitFor({ timeout: 60_000 });
    const text = await page.locator(id("try-json")).textContent();
    const body = JSON.parse(text);
    const server = await served(file);
    assert.equal(body[0].label, server[0].label, `${file}: top-1 differs`);
    const conf = (b) => Object.fromEntries(b.map((p) => [p.label, p.conf]));
    const [mine, theirs] = [conf(body), conf(server)];
    for (const l of LABELS) {
      assert.ok(Math.abs(mine[l] - theirs[l]) <= 1e-3, `${file} ${l}: ${mine[l]} here, ${theirs[l]} on the server`);
    }
    times.push(Number((await page.locator(id("try-time")).textContent()).match(/[0-9.]+/)[0]));
  }
  assert.deepEqual(errors, []);
  times.sort((a, b) => a - b);
  figures[expectBackend] = {
    load_ms: loadMs,
    per_image_ms_median: times[Math.floor(times.length / 2)],
    per_image_ms_min: times[0],
    images: times.length,
  };
  return page;
}

test("the try page matches the predict API on WebGPU", { timeout: 600_000 }, async () => {
  const page = await tryPage(WEBGPU, "?backend=webgpu", "webgpu");
  await page.screenshot({ path: join(SCREENSHOTS, "try-desktop.png"), fullPage: true });
});

test("without WebGPU the try page falls back to the CPU and still matches", { timeout: 600_000 }, async () => {
  await tryPage(LAUNCH, "", "cpu");
});

test("the publish page makes a preview link with a QR code", { timeout: 120_000 }, async () => {
  const { page, errors } = await openPage(LAUNCH);
  await page.goto(`${BASE_URL}/models/${made.model}/publish`);
  await page.locator(id("publish-no-link")).waitFor();
  await page.locator(id("publish-create")).click();
  const qr = page.locator(`${id("publish-qr")} svg`);
  await qr.waitFor();
  const link = await page.locator(id("publish-link")).getAttribute("href");
  assert.match(link, /\/p\/\d+\.\d+\.[A-Za-z0-9_-]+$/);
  made.link = link.replace(/^https?:\/\/[^/]+/, "");
  assert.equal(await page.locator(id("publish-metric")).count() >= 5, true);
  await page.screenshot({ path: join(SCREENSHOTS, "publish-desktop.png"), fullPage: true });
  assert.deepEqual(errors, []);
});

test("a preview link runs the model on the camera, frame after frame", { timeout: 300_000 }, async () => {
  const { page, errors } = await openPage(CAMERA, PHONE, true);
  await page.goto(`${BASE_URL}${made.link}`);
  await page.locator(id("runtime-ready")).waitFor({ timeout: 120_000 });
  const top = page.locator(id("preview-top"));
  await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.frames) >= 3, id("preview-top"), { timeout: 120_000 });
  const first = Number(await top.getAttribute("data-frames"));
  await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.dataset.frames) > n, [id("preview-top"), first], { timeout: 60_000 });
  const labels = await page.locator(id("preview-label")).evaluateAll((els) => els.map((e) => e.dataset.label));
  assert.ok(labels.length >= 1 && labels.every((l) => LABELS.includes(l)), String(labels));
  assert.match(await page.locator(id("preview-fps")).textContent(), /[0-9.]+ frames\/s/);
  await page.screenshot({ path: join(SCREENSHOTS, "preview-phone.png") });
  assert.deepEqual(errors, []);
});

test("without a camera the preview offers a photo", { timeout: 300_000 }, async () => {
  const { page } = await openPage(LAUNCH, PHONE, true);
  await page.goto(`${BASE_URL}${made.link}`);
  await page.locator(id("preview-no-camera")).waitFor({ timeout: 120_000 });
  await page.locator(id("preview-file")).setInputFiles(made.images[0]);
  const labels = page.locator(`${id("preview-photo-labels")} ${id("prediction")}`);
  await labels.first().waitFor({ timeout: 60_000 });
  assert.equal(await labels.count(), LABELS.length);
});

test("expired, forged and revoked links are refused", { timeout: 120_000 }, async () => {
  const { page } = await openPage(LAUNCH, PHONE, true);
  const short = await api("POST", `/api/models/${made.model}/preview-links`, { expires_in_hours: 1 / 3600 });
  assert.equal(short.status, 201, short.text);
  await new Promise((r) => setTimeout(r, 2100));
  const token = made.link.split("/p/")[1];
  const forged = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
  const cases = [
    [short.json.token, "preview_expired"],
    [forged, "preview_invalid"],
  ];
  for (const [t, code] of cases) {
    await page.goto(`${BASE_URL}/p/${t}`);
    const refused = page.locator(id("preview-refused"));
    await refused.waitFor();
    assert.equal(await refused.getAttribute("data-code"), code);
    const artifact = await fetch(`${BASE_URL}/api/models/${made.model}/artifact?format=web&preview=${t}`);
    assert.equal(artifact.status, 403);
  }
  await page.screenshot({ path: join(SCREENSHOTS, "preview-refused-phone.png") });
  // Revoked from the publish page.
  const { page: owner } = await openPage(LAUNCH);
  await owner.goto(`${BASE_URL}/models/${made.model}/publish`);
  await owner.locator(id("publish-revoke")).first().click();
  await owner.locator(id("publish-no-link")).waitFor();
  await page.goto(`${BASE_URL}${made.link}`);
  await page.locator(`${id("preview-refused")}[data-code="preview_revoked"]`).waitFor();
  const artifact = await fetch(`${BASE_URL}/api/models/${made.model}/artifact?format=web&preview=${token}`);
  assert.equal(artifact.status, 403);
});

test("on-device figures are recorded", async () => {
  assert.ok(figures.webgpu && figures.cpu, "both backends were measured");
  const out = {
    model: "efficientnet-lite0, 3 classes, 224 px (shapes demo)",
    note: "headless Chromium on this machine: WebGPU is SwiftShader (a CPU emulation of a GPU)",
    ...figures,
  };
  await mkdir(DOCS, { recursive: true });
  await writeFile(join(DOCS, "benchmarks-ondevice.json"), JSON.stringify(out, null, 2) + "\n");
  console.log(JSON.stringify(out));
});
