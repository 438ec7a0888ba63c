// OCR in the browser, in headless Chromium against a running server (the settings of
// training.mjs: a worker, short budgets allowed, the pretrained PP-OCR models fetchable or
// cached): creates the signs demo (rendered text lines) from the instances page, trains
// ocr-fast through the task form, opens the model page (the figures beside the starting
// models', the validation signs with their true and read lines and texts). Then the model
// runs in the browser on the try page, on the CPU and on WebGPU (SwiftShader), over the
// validation signs: the texts drawn and listed equal those of POST /api/predict of a service
// of the same version, with the same boxes (whole pixels, within 2 px). Last, a preview link
// opened with no login on a phone whose fake camera films a validation sign draws the lines
// the server reads there, with their texts, over the camera picture.
// Leaves docs/screenshots/ocr-{model,try}-*.png and ocr-preview-phone.png.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { SCREENSHOTS, RESULTS, BASE_URL, ADMIN_PASSWORD, DESKTOP, PHONE, LAUNCH } from "./env.mjs";
import { y4mOf } from "./fixtures.mjs";

const RUN = Date.now().toString(36);
const TRAINING_MS = 8 * 60_000;

let browser;
let page;
const pageErrors = [];
const made = {};
const id = (testid) => `[data-testid="${testid}"]`;

before(async () => {
  assert.ok(ADMIN_PASSWORD, "set ADMIN_PASSWORD to the admin password of the server under test");
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

const extraBrowsers = [];
after(async () => {
  for (const b of extraBrowsers) await b.close().catch(() => {});
  await browser?.close();
});

function step(name, body, timeout = 60_000) {
  test(name, { timeout }, async () => {
    try {
      await body();
      assert.deepEqual(pageErrors, [], "the page threw or panicked");
    } catch (err) {
      const file = join(RESULTS, `ocr-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
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

step("a: admin creates the OCR demo and trains ocr-fast from the form", async () => {
  await page.goto(`${BASE_URL}/login`);
  await page.fill(id("login-username"), "admin");
  await page.fill(id("login-password"), ADMIN_PASSWORD);
  await page.click(id("login-submit"));
  await page.waitForURL((url) => url.pathname === "/");
  await page.click(id("create-demo-signs"));
  await page.waitForURL((url) => /^\/instances\/\d+$/.test(url.pathname), { timeout: 60_000 });
  made.instance = Number(new URL(page.url()).pathname.split("/")[2]);
  assert.equal(await page.getAttribute(id("instance-type"), "data-type"), "ocr");
  const row = page.locator(`${id("dataset-row")}[data-name="signs"]`);
  await row.waitFor();
  assert.equal(await row.locator(id("dataset-total")).textContent(), "60 images");
  await page.click(id("new-task"));
  await page.fill(id("task-name"), `signs-${RUN}`);
  await page.check(`${id("task-label")}[value="text"]`);
  const presets = await page.$$eval(`${id("task-preset")} option`, (o) => o.map((x) => x.value));
  assert.deepEqual(presets, ["ocr-fast"]);
  await page.selectOption(id("task-device"), "cpu");
  await page.fill(id("task-max-minutes"), "6");
  if (!(await page.locator(id("task-advanced-panel")).evaluate((d) => d.open))) {
    await page.click(id("task-advanced"));
  }
  await page.fill(id("task-max-epochs"), "2");
  await page.click(id("task-submit"));
  await page.waitForURL((url) => /^\/tasks\/\d+$/.test(url.pathname));
  made.task = Number(new URL(page.url()).pathname.split("/")[2]);
  await page.locator(`${id("task-status")}[data-status="succeeded"]`).waitFor({ timeout: TRAINING_MS });
  made.model = (await api("GET", `/api/tasks/${made.task}`)).json.model_id;
  assert.ok(made.model, "the task made a model");
}, TRAINING_MS + 90_000);

step("b: the model page shows the figures and the texts read on the validation signs", async () => {
  await page.click(id("task-model-link"));
  await page.waitForURL((url) => url.pathname === `/models/${made.model}`);
  const model = (await api("GET", `/api/models/${made.model}`)).json;
  const m = model.metrics;
  assert.ok(m.exact_match >= 0.5, `signs in DejaVu Sans are read: exact match ${m.exact_match}`);
  assert.match(await page.locator(id("metric-exact_match")).textContent(), /starting models/);
  assert.equal(await page.locator(id("eval-image")).count(), m.validation_images);
  assert.equal(await page.locator(id("true-line")).count(), m.validation_lines);
  // Every line read is drawn with its text over its sign.
  const read = m.images.flatMap((im) => im.read.map((l) => l.text));
  assert.ok(read.length >= 1);
  const drawn = await page.locator(`${id("read-line")} text`).allTextContents();
  assert.deepEqual(drawn.sort(), [...read].sort());
  const right = await page.locator(`${id("ocr-result")}[data-right="true"]`).count();
  assert.equal(right, Math.round(m.exact_match * m.validation_lines));
  await shoot("ocr-model");
  made.images = m.images;
}, 60_000);

// ---------------------------------------------------------------------------------------
// The browser's lines against the server's on every validation sign, CPU and WebGPU.

const WEBGPU = { ...LAUNCH, args: [...LAUNCH.args, "--enable-unsafe-webgpu"] };

/** The predict API's lines for an image file. */
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
    assert.ok(i < 240 && json.errorCode === "2002", JSON.stringify(json));
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The same lines in the same (reading) order: texts equal, corners within 2 px. */
function sameLines(file, mine, theirs) {
  const what = `${file}\nbrowser ${JSON.stringify(mine)}\nserver ${JSON.stringify(theirs)}`;
  assert.deepEqual(mine.map((l) => l.label), theirs.map((l) => l.label), what);
  mine.forEach((l, i) => {
    const t = theirs[i];
    assert.ok(Math.abs(l.conf - t.conf) <= 1e-3, what);
    l.pos.forEach(([x, y], k) => {
      assert.ok(Number.isInteger(x) && Number.isInteger(y), `whole pixels: ${what}`);
      assert.ok(Math.abs(x - t.pos[k][0]) <= 2 && Math.abs(y - t.pos[k][1]) <= 2, what);
    });
  });
}

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

/** Runs the try page on `backend` over every validation sign; each answer equals the server's. */
async function tryOn(options, backend) {
  const { page: p, errors } = await ownPage(options);
  await p.goto(`${BASE_URL}/models/${made.model}/try?backend=${backend}`);
  const ready = p.locator(id("runtime-ready"));
  await ready.waitFor({ timeout: 180_000 });
  assert.equal(await ready.getAttribute("data-backend"), backend);
  let lines = 0;
  for (const [i, file] of made.files.entries()) {
    await p.setInputFiles(id("try-file"), file);
    await p.locator(`${id("try-answer")}[data-runs="${i + 1}"]`).waitFor({ timeout: 120_000 });
    const mine = JSON.parse(await p.locator(id("try-json")).textContent());
    // Each line is drawn over the picture, labelled with its text.
    const drawn = await p.locator(`${id("try-boxes")} ${id("drawn-box")}`).evaluateAll((gs) => gs.map((g) => g.dataset.label));
    assert.deepEqual(drawn, mine.map((l) => l.label));
    sameLines(file, mine, await served(file));
    lines += mine.length;
  }
  assert.ok(lines >= made.files.length, `the browser read lines (${lines} on ${made.files.length} signs)`);
  assert.deepEqual(errors, []);
  console.log(`OCR try page on ${backend}: ${lines} lines on ${made.files.length} signs`);
  return p;
}

step("c: the try page's lines on the CPU equal the predict API's on the validation signs", async () => {
  made.files = [];
  for (const im of made.images) {
    const bytes = await page.evaluate(async (image) => {
      const res = await fetch(`/api/images/${image}/content`);
      return Array.from(new Uint8Array(await res.arrayBuffer()));
    }, im.image_id);
    const file = join(RESULTS, `sign-${RUN}-${im.image_id}.png`);
    await writeFile(file, Buffer.from(bytes));
    made.files.push(file);
  }
  made.service = `signs-${RUN}`;
  const deployed = await api("POST", `/api/models/${made.model}/services`, { name: made.service });
  assert.equal(deployed.status, 201, JSON.stringify(deployed.json));
  made.serviceToken = deployed.json.token;
  page = await tryOn(LAUNCH, "cpu");
  await shoot("ocr-try");
}, 8 * 60_000);

step("d: on WebGPU the try page's lines equal the predict API's too", async () => {
  await tryOn(WEBGPU, "webgpu");
}, 8 * 60_000);

step("e: a preview link on a phone reads the text of the camera picture", async () => {
  // The camera films the first validation sign the server reads a line on.
  let file, theirs;
  for (const f of made.files) {
    theirs = await served(f);
    if (theirs.length) {
      file = f;
      break;
    }
  }
  assert.ok(file, "the server reads some validation sign");
  const video = join(RESULTS, `sign-${RUN}.y4m`);
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
  await phone.locator(id("runtime-ready")).waitFor({ timeout: 180_000 });
  await phone.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.frames) >= 2, id("preview-top"), { timeout: 180_000 });
  const drawn = await phone.locator(`${id("preview-boxes")} ${id("drawn-box")}`).evaluateAll((gs) => gs.map((g) => g.dataset.label));
  // The camera's picture went through 4:2:0 video: the server's surest line must be read
  // the same, case, spaces and punctuation aside (as the evaluation compares texts).
  const norm = (t) => t.toUpperCase().replace(/[^0-9A-Z]/g, "");
  const surest = [...theirs].sort((a, b) => b.conf - a.conf)[0];
  assert.ok(drawn.map(norm).includes(norm(surest.label)), `server ${JSON.stringify(theirs)}; phone ${JSON.stringify(drawn)}`);
  await phone.screenshot({ path: join(SCREENSHOTS, "ocr-preview-phone.png") });
  assert.deepEqual(errors, []);
}, 6 * 60_000);
