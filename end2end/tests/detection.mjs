// Object detection in the browser, in headless Chromium against a running server (the same
// settings as training.mjs: a worker, short budgets allowed, DATA_DIR for the demo's files):
// creates the scenes demo from the instances page, trains detection-fast at 128 px through
// the task form, opens the model page (mAP, AP per class, the precision-recall curves, the
// validation images with true and predicted boxes, the confidence slider redrawing them).
// Then the model runs in the browser on the try page, on the CPU and on WebGPU (SwiftShader),
// over the demo's validation images and two training images (10): the boxes are drawn and
// equal those of POST /api/predict of a service of the same version (IoU >= 0.99, confidence
// within 1e-3). Last, a preview link opened with no login on a phone whose fake camera films
// a validation image draws boxes around the objects the server finds there.
// Leaves docs/screenshots/detection-{model,try}-*.png and detection-preview-phone.png.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { SCREENSHOTS, RESULTS, BASE_URL, ADMIN_PASSWORD, DESKTOP, PHONE, LAUNCH } from "./env.mjs";
import { y4mOf } from "./fixtures.mjs";

const RUN = Date.now().toString(36);
const LABELS = ["circle", "square", "triangle"];
const TRAINING_MS = 6 * 60_000;
const DATA_DIR = process.env.DATA_DIR;

let browser;
let page;
const pageErrors = [];
const made = {};
const id = (testid) => `[data-testid="${testid}"]`;

before(async () => {
  assert.ok(ADMIN_PASSWORD, "set ADMIN_PASSWORD to the admin password of the server under test");
  assert.ok(DATA_DIR, "set DATA_DIR to the server's data directory (the demo's images are read from it)");
  await mkdir(SCREENSHOTS, { recursive: true });
  await mkdir(RESULTS, { recursive: true });
  browser = await chromium.launch(LAUNCH);
  const context = await browser.newContext({ viewport: DESKTOP });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /panicked/.test(msg.text())) pageErrors.push(msg.text());
  });
});

after(async () => {
  await browser?.close();
});

function step(name, body, timeout = 60_000) {
  test(name, { timeout }, async () => {
    try {
      await body();
      assert.deepEqual(pageErrors, [], "the page threw or panicked");
    } catch (err) {
      const file = join(RESULTS, `detection-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
      await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
      throw err;
    }
  });
}

async function shoot(name) {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size}.png`), fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
}

async function api(method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const res = await fetch(path, {
        method,
        headers: body ? { "content-type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, json: await res.json().catch(() => null) };
    },
    [method, path, body],
  );
}

// ---------------------------------------------------------------------------------------

step("a: admin creates the detection demo and trains detection-fast from the form", async () => {
  await page.goto(`${BASE_URL}/login`);
  await page.fill(id("login-username"), "admin");
  await page.fill(id("login-password"), ADMIN_PASSWORD);
  await page.click(id("login-submit"));
  await page.waitForURL((url) => url.pathname === "/");
  await page.click(id("create-demo-scenes"));
  await page.waitForURL((url) => /^\/instances\/\d+$/.test(url.pathname), { timeout: 60_000 });
  made.instance = Number(new URL(page.url()).pathname.split("/")[2]);
  assert.equal(await page.getAttribute(id("instance-type"), "data-type"), "object_detection");
  const row = page.locator(`${id("dataset-row")}[data-name="scenes"]`);
  await row.waitFor();
  assert.equal(await row.locator(id("dataset-total")).textContent(), "80 images");
  await page.click(id("new-task"));
  await page.fill(id("task-name"), `scenes-${RUN}`);
  for (const label of LABELS) await page.check(`${id("task-label")}[value="${label}"]`);
  const presets = await page.$$eval(`${id("task-preset")} option`, (o) => o.map((x) => x.value));
  assert.deepEqual(presets, ["detection-fast", "detection-accurate"]);
  await page.selectOption(id("task-device"), "cpu");
  await page.fill(id("task-max-minutes"), "2");
  if (!(await page.locator(id("task-advanced-panel")).evaluate((d) => d.open))) {
    await page.click(id("task-advanced"));
  }
  assert.equal(await page.inputValue(id("task-image-size")), "320");
  await page.fill(id("task-image-size"), "128");
  await page.fill(id("task-max-epochs"), "2");
  await page.click(id("task-submit"));
  await page.waitForURL((url) => /^\/tasks\/\d+$/.test(url.pathname));
  made.task = Number(new URL(page.url()).pathname.split("/")[2]);
  await page.locator(`${id("task-status")}[data-status="succeeded"]`).waitFor({ timeout: TRAINING_MS });
  await page.locator(`${id("accuracy-chart")} ${id("chart-point")}`).first().waitFor();
  made.model = (await api("GET", `/api/tasks/${made.task}`)).json.model_id;
  assert.ok(made.model, "the task made a model");
}, TRAINING_MS + 90_000);

step("b: the model page shows mAP, AP per class, PR curves and the boxes on validation images", async () => {
  await page.click(id("task-model-link"));
  await page.waitForURL((url) => url.pathname === `/models/${made.model}`);
  const model = (await api("GET", `/api/models/${made.model}`)).json;
  assert.equal(await page.locator(id("metric-map")).textContent(), `${(model.metrics.map * 100).toFixed(1)}%`);
  assert.ok(model.metrics.map > 0.2, `the detector learned: mAP ${model.metrics.map}`);
  assert.equal(await page.locator(id("class-ap")).count(), 3);
  assert.ok((await page.locator(`${id("pr-curves")} polyline`).count()) >= 1);
  assert.equal(await page.locator(id("eval-image")).count(), 8);
  assert.ok((await page.locator(id("true-box")).count()) >= 8, "true boxes drawn");
  const served = await page.locator(id("pred-box")).count();
  assert.ok(served > 0, "predicted boxes drawn at the served threshold");
  // Lowering the threshold redraws with at least as many boxes.
  await page.locator(id("conf-slider")).fill("0.05");
  assert.equal(await page.locator(id("conf-value")).textContent(), "0.05");
  assert.ok((await page.locator(id("pred-box")).count()) >= served);
  await page.locator(id("conf-slider")).fill("0.3");
  await shoot("detection-model");
  made.valImage = model.metrics.images[0].image_id;
});


// ---------------------------------------------------------------------------------------
// The browser's boxes against the server's, on every validation image of the demo and two
// training images (10), on the CPU and on WebGPU; then the phone preview on a camera.

const IMAGES = 10;
const WEBGPU = { ...LAUNCH, args: [...LAUNCH.args, "--enable-unsafe-webgpu"] };

/** Intersection over union of two `pos` corner lists (relative coordinates). */
function iou(a, b) {
  const [ax0, ay0] = a[0], [ax1, ay1] = a[2], [bx0, by0] = b[0], [bx1, by1] = b[2];
  const w = Math.max(0, Math.min(ax1, bx1) - Math.max(ax0, bx0));
  const h = Math.max(0, Math.min(ay1, by1) - Math.max(ay0, by0));
  const inter = w * h;
  const union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter;
  return union > 0 ? inter / union : 0;
}

/** The predict API's boxes for an image file. */
async function served(file) {
  const b64 = (await readFile(file)).toString("base64");
  for (let i = 0; ; i++) {
    const res = await fetch(`${BASE_URL}/api/predict/${made.service}`, {
      method: "POST",
      headers: { authorization: made.serviceToken, "content-type": "application/json" },
      body: JSON.stringify({ dataArray: [{ body: b64 }] }),
    });
    const json = await res.json();
    if (json.success) return json.result.output[0].body;
    // 2002 while the service loads its model.
    assert.ok(i < 120 && json.errorCode === "2002", JSON.stringify(json));
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Every server box has a browser box of the same label with IoU ≥ 0.99 and a confidence
 * within 1e-3, and the other way round; a box only one side has must sit within 1e-3 of the
 * served threshold (the two sides round differently there).
 */
function sameBoxes(file, mine, theirs) {
  const matched = (from, to) => from.filter((a) => {
    const best = to
      .filter((b) => b.label === a.label)
      .map((b) => ({ b, iou: iou(a.pos, b.pos) }))
      .sort((x, y) => y.iou - x.iou)[0];
    if (best && best.iou >= 0.99) {
      assert.ok(Math.abs(best.b.conf - a.conf) <= 1e-3, `${file}: conf ${a.conf} vs ${best.b.conf}`);
      return false;
    }
    return true;
  });
  for (const lone of [...matched(mine, theirs), ...matched(theirs, mine)]) {
    assert.ok(Math.abs(lone.conf - made.threshold) <= 1e-3,
      `${file}: ${JSON.stringify(lone)} on one side only\nbrowser ${JSON.stringify(mine)}\nserver ${JSON.stringify(theirs)}`);
  }
}

/** A logged-in page in a new browser launched with `options`. */
async function ownPage(options, viewport = DESKTOP, login = true) {
  const b = await chromium.launch(options);
  extraBrowsers.push(b);
  const context = await b.newContext({ viewport, permissions: ["camera"] });
  if (login) {
    const res = await context.request.post(`${BASE_URL}/api/auth/login`, {
      data: { username: "admin", password: ADMIN_PASSWORD },
    });
    assert.equal(res.status(), 200);
  }
  const p = await context.newPage();
  p.setDefaultTimeout(30_000);
  const errors = [];
  p.on("pageerror", (err) => errors.push(String(err)));
  p.on("console", (msg) => {
    if (msg.type() === "error" && /panicked/.test(msg.text())) errors.push(msg.text());
  });
  return { page: p, errors };
}
const extraBrowsers = [];
after(async () => {
  for (const b of extraBrowsers) await b.close().catch(() => {});
});

/** Runs the try page on `backend` over every test image; each answer equals the server's. */
async function tryOn(options, backend) {
  const { page: p, errors } = await ownPage(options);
  await p.goto(`${BASE_URL}/models/${made.model}/try?backend=${backend}`);
  const ready = p.locator(id("runtime-ready"));
  await ready.waitFor({ timeout: 120_000 });
  assert.equal(await ready.getAttribute("data-backend"), backend);
  const times = [];
  let boxes = 0;
  for (const [i, file] of made.files.entries()) {
    await p.setInputFiles(id("try-file"), file);
    await p.locator(`${id("try-answer")}[data-runs="${i + 1}"]`).waitFor({ timeout: 60_000 });
    const mine = JSON.parse(await p.locator(id("try-json")).textContent());
    assert.equal(await p.locator(`${id("try-boxes")} ${id("drawn-box")}`).count(), mine.length);
    sameBoxes(file, mine, await served(file));
    boxes += mine.length;
    times.push(Number((await p.locator(id("try-time")).textContent()).match(/[0-9.]+/)[0]));
  }
  assert.ok(boxes >= IMAGES, `the browser found boxes (${boxes} on ${IMAGES} images)`);
  assert.deepEqual(errors, []);
  times.sort((a, b) => a - b);
  console.log(`detection try page on ${backend}: ${boxes} boxes on ${IMAGES} images, median ${times[times.length >> 1]} ms per image`);
  return p;
}

step("c: the try page's boxes on the CPU equal the predict API's on 10 images", async () => {
  const model = (await api("GET", `/api/models/${made.model}`)).json;
  made.threshold = model.metrics.conf_threshold;
  made.truth = model.metrics.images;
  const task = (await api("GET", `/api/tasks/${made.task}`)).json;
  const listed = (await api("GET", `/api/datasets/${task.dataset_id}/images?per_page=100`)).json.items;
  const val = new Set(made.truth.map((e) => e.image_id));
  const ids = [...val, ...listed.map((im) => im.id).filter((i) => !val.has(i)).slice(0, IMAGES - val.size)];
  assert.equal(ids.length, IMAGES);
  made.files = [];
  for (const image of ids) {
    // The image exactly as the server has it (the demo's file, through the content route).
    const bytes = await page.evaluate(async (image) => {
      const res = await fetch(`/api/images/${image}/content`);
      return Array.from(new Uint8Array(await res.arrayBuffer()));
    }, image);
    const file = join(RESULTS, `scene-${RUN}-${image}.png`);
    await writeFile(file, Buffer.from(bytes));
    made.files.push(file);
  }
  made.service = `scenes-${RUN}`;
  const deployed = await api("POST", `/api/models/${made.model}/services`, { name: made.service });
  assert.equal(deployed.status, 201, JSON.stringify(deployed.json));
  made.serviceToken = deployed.json.token;
  const p = await tryOn(LAUNCH, "cpu");
  page = p;
  await shoot("detection-try");
}, 5 * 60_000);

step("d: on WebGPU the try page's boxes equal the predict API's too", async () => {
  await tryOn(WEBGPU, "webgpu");
}, 5 * 60_000);

step("e: a preview link on a phone draws the boxes on the camera picture", async () => {
  // The camera films the validation image with the most true boxes.
  const shown = [...made.truth].sort((a, b) => b.truth.length - a.truth.length)[0];
  const file = made.files.find((f) => f.endsWith(`-${shown.image_id}.png`));
  const video = join(RESULTS, `scene-${RUN}.y4m`);
  await y4mOf(page, file, video);
  const link = await api("POST", `/api/models/${made.model}/preview-links`, { expires_in_hours: 1 });
  assert.equal(link.status, 201, JSON.stringify(link.json));
  const camera = {
    ...LAUNCH,
    args: [...LAUNCH.args, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      `--use-file-for-fake-video-capture=${video}`],
  };
  const { page: phone, errors } = await ownPage(camera, PHONE, false);
  await phone.goto(`${BASE_URL}/p/${link.json.token}`);
  await phone.locator(id("runtime-ready")).waitFor({ timeout: 120_000 });
  await phone.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.frames) >= 3, id("preview-top"), { timeout: 120_000 });
  const drawn = await phone.locator(`${id("preview-boxes")} ${id("drawn-box")}`).evaluateAll((gs) => gs.map((g) => {
    // Each box is a polygon of its four corners (TL TR BR BL), in percent of the picture.
    const pos = g.querySelector("polygon").getAttribute("points").trim().split(/\s+/)
      .map((p) => p.split(",").map((v) => Number(v) / 100));
    return { label: g.dataset.label, pos };
  }));
  assert.ok(drawn.length >= 1, "boxes drawn over the camera picture");
  assert.ok(drawn.every((d) => LABELS.includes(d.label)), JSON.stringify(drawn));
  // The camera's picture went through 4:2:0 video, so its boxes are close to the server's on
  // the original file, not equal: each box the server is sure of (0.1 above the threshold)
  // has a drawn one of its label around it, and at least one box matches.
  const theirs = await served(file);
  let matched = 0;
  for (const s of theirs) {
    const best = Math.max(0, ...drawn.filter((d) => d.label === s.label).map((d) => iou(d.pos, s.pos)));
    if (best >= 0.5) matched++;
    else assert.ok(s.conf < made.threshold + 0.1, `${JSON.stringify(s)} from the server; drawn ${JSON.stringify(drawn)}`);
  }
  assert.ok(matched >= 1, `no drawn box matches the server's ${JSON.stringify(theirs)}: ${JSON.stringify(drawn)}`);
  await phone.screenshot({ path: join(SCREENSHOTS, "detection-preview-phone.png") });
  assert.deepEqual(errors, []);
}, 5 * 60_000);

step("f: suggested boxes from the trained version are drafts to accept or reject by keyboard", async () => {
  // Two validation images made unlabelled; the version suggests boxes on them.
  const ds = (await api("GET", `/api/instances/${made.instance}/datasets`)).json[0].id;
  const picked = made.truth.slice(0, 2).map((t) => t.image_id);
  for (const image of picked) {
    const r = await api("PUT", `/api/images/${image}/annotation`, {});
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }
  const labelledBefore = (await api("GET", `/api/datasets/${ds}`)).json.labelled;
  await page.setViewportSize(DESKTOP);
  await page.goto(`${BASE_URL}/datasets/${ds}/label?status=unlabelled&image=${picked[0]}`);
  await page.locator(`${id("board")}[data-ready="true"]`).waitFor();
  await page.click(id("prelabel-start"));
  await page.waitForFunction((sel) => /Suggested on 2 images/.test(document.querySelector(sel)?.textContent ?? ""),
    id("prelabel-status"), { timeout: 120_000 });
  const listed = (await api("GET", `/api/datasets/${ds}/prelabels`)).json;
  assert.equal(listed.run.model_id, made.model);
  const drafts = new Map(picked.map((image) => [image, []]));
  for (const i of listed.items) drafts.set(i.image_id, i.boxes ?? []);
  // Drafts are not labels.
  assert.equal((await api("GET", `/api/datasets/${ds}`)).json.labelled, labelledBefore);
  // The image with more drafts is accepted, the other rejected.
  const [accept, reject] = [...picked].sort((a, b) => drafts.get(b).length - drafts.get(a).length);
  const want = drafts.get(accept);
  assert.ok(want.length >= 1, `the version suggests boxes: ${JSON.stringify(listed)}`);

  await page.goto(`${BASE_URL}/datasets/${ds}/label?status=unlabelled&image=${accept}`);
  const board = page.locator(`${id("board")}[data-ready="true"][data-image-id="${accept}"]`);
  await board.waitFor();
  await page.locator(`${id("board")}[data-drafts="${want.length}"]`).waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, "detection-drafts-desktop.png") });
  await page.locator(id("board")).focus();
  // E accepts the most confident draft (the first: drafts come by confidence), Enter the rest.
  await page.keyboard.press("e");
  await page.locator(`${id("board")}[data-drafts="${want.length - 1}"]`).waitFor();
  await page.keyboard.press("Enter");
  await page.locator(`${id("board")}[data-drafts="0"]`).waitFor();
  await page.locator(`${id("save-status")}[data-state="saved"]`).waitFor();
  const saved = (await api("GET", `/api/images/${accept}`)).json;
  assert.deepEqual(saved.annotation.boxes, want.map(({ conf, ...box }) => box), "accepted drafts are saved exactly");
  await page.waitForFunction(async ([ds, image]) => {
    const res = await fetch(`/api/datasets/${ds}/prelabels`);
    return !(await res.json()).items.some((i) => i.image_id === image);
  }, [ds, accept]);

  // X rejects every draft: the image stays unlabelled and its drafts are gone.
  if (drafts.get(reject).length === 0) return;
  await page.goto(`${BASE_URL}/datasets/${ds}/label?status=unlabelled&image=${reject}`);
  await page.locator(`${id("board")}[data-ready="true"][data-image-id="${reject}"]`).waitFor();
  await page.locator(`${id("board")}[data-drafts="${drafts.get(reject).length}"]`).waitFor();
  await page.locator(id("board")).focus();
  await page.keyboard.press("x");
  await page.locator(`${id("board")}[data-drafts="0"]`).waitFor();
  await page.waitForFunction(async (ds) => (await (await fetch(`/api/datasets/${ds}/prelabels`)).json()).items.length === 0, ds);
  const after = (await api("GET", `/api/images/${reject}`)).json;
  assert.equal(after.labelled, false);
  assert.equal((await api("GET", `/api/datasets/${ds}`)).json.labelled, labelledBefore + 1);
}, 4 * 60_000);
