// Labelling in the browser (issue #3), in headless Chromium against a running server:
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_PASSWORD=... DATA_DIR=<the server's data directory> npm test
//
// The test writes its own images under $DATA_DIR/datasets/e2e-<run>/ (the default data root;
// see fixtures.mjs), indexes
// them through the UI, labels them with the mouse and the keyboard, and checks every
// change both in the UI and through the API, also after a reload. It leaves screenshots of
// each page (desktop and phone width) in docs/screenshots/ and browser timings in
// docs/benchmarks-browser.json. Steps run in order and share one browser context, like one
// person using the app; a failing step leaves a screenshot in end2end/test-results/.
// E2E_DEBUG=1 prints every request that changes something.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { DOCS, SCREENSHOTS, RESULTS, BASE_URL, ADMIN_PASSWORD, DESKTOP, PHONE, LAUNCH } from "./env.mjs";
import { boxSet, classificationSet, manyImages } from "./fixtures.mjs";

const BENCHMARKS = join(DOCS, "benchmarks-browser.json");

const DATA_DIR = process.env.DATA_DIR;

const RUN = Date.now().toString(36);
const FILES = DATA_DIR ? join(DATA_DIR, "datasets", `e2e-${RUN}`) : "";
const PLATE = "京A·12345";

let browser;
let context;
let page;
const pageErrors = [];
// What earlier steps made, for later ones.
const made = {};
const bench = {};

const id = (testid) => `[data-testid="${testid}"]`;

function watch(p) {
  p.setDefaultTimeout(15_000);
  p.on("pageerror", (err) => pageErrors.push(String(err)));
  p.on("console", (msg) => {
    if (msg.type() === "error" && /panicked/.test(msg.text())) pageErrors.push(msg.text());
  });
  if (process.env.E2E_DEBUG) {
    p.on("request", (r) => r.method() !== "GET" && console.log("#", r.method(), r.url(), (r.postData() ?? "").slice(0, 400)));
  }
  // Deleting a tag asks first; the tests always agree.
  p.on("dialog", (dialog) => dialog.accept());
}

before(async () => {
  assert.ok(ADMIN_PASSWORD, "set ADMIN_PASSWORD to the admin password of the server under test");
  assert.ok(DATA_DIR, "set DATA_DIR to the server's data directory (AUTOLEARN_DATA_DIR)");
  await mkdir(SCREENSHOTS, { recursive: true });
  await mkdir(RESULTS, { recursive: true });
  made.cls = await classificationSet(join(FILES, "pets"));
  await boxSet(join(FILES, "street"), ["a.png", "b.png", "c.png"], { big: true });
  await boxSet(join(FILES, "plates"), ["plate1.png", "plate2.png"], { width: 480, height: 240 });
  await manyImages(join(FILES, "many"), 120);
  browser = await chromium.launch(LAUNCH);
  context = await browser.newContext({ viewport: DESKTOP });
  page = await context.newPage();
  watch(page);
});

after(async () => {
  await browser?.close();
});

function step(name, body, timeout = 90_000) {
  test(name, { timeout }, async () => {
    try {
      await body();
      assert.deepEqual(pageErrors, [], "the page threw or panicked");
    } catch (err) {
      const file = join(RESULTS, `labelling-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
      await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
      throw err;
    }
  });
}

/** Screenshots of the current page at desktop and phone width. */
async function shoot(name, { fullPage = true } = {}) {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size}.png`), fullPage });
  }
  await page.setViewportSize(DESKTOP);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
}

/** Calls the API from `p` (default: the admin's page), so with its session cookie. */
function api(method, path, body, p = page) {
  return p.evaluate(
    async ([method, path, body]) => {
      const res = await fetch(path, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        // not JSON
      }
      return { status: res.status, json, text };
    },
    [method, path, body],
  );
}

async function apiOk(method, path, body, p = page) {
  const res = await api(method, path, body, p);
  assert.ok(res.status >= 200 && res.status < 300, `${method} ${path}: ${res.status} ${res.text}`);
  return res.json;
}

/** Polls `get` until `check` accepts its value (assertions inside `check` may throw). */
async function eventually(get, check, timeout = 10_000) {
  const end = Date.now() + timeout;
  for (;;) {
    const value = await get();
    try {
      check(value);
      return value;
    } catch (err) {
      if (Date.now() > end) throw err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function text(selector, p = page) {
  return (await p.locator(selector).first().textContent()).trim();
}

/** Waits until the page has saved every change. */
async function saved(p = page) {
  await p.locator(`${id("save-status")}[data-state="saved"]`).waitFor();
}

async function login(p, username, password) {
  await p.goto(`${BASE_URL}/login`);
  await p.fill(id("login-username"), username);
  await p.fill(id("login-password"), password);
  await p.click(id("login-submit"));
  await p.waitForURL((url) => url.pathname === "/");
}

async function createInstance(type, name) {
  await page.goto(`${BASE_URL}/`);
  await page.click(id("new-instance"));
  await page.selectOption(id("create-type"), type);
  await page.fill(id("create-name"), name);
  await page.click(id("create-submit"));
  const row = page.locator(`${id("instance-row")}[data-name="${name}"]`);
  await row.waitFor();
  return Number(await row.getAttribute("data-instance-id"));
}

/** Indexes `path` as a dataset of `instance` through the form; returns the dataset id. */
async function createDataset(instance, name, path) {
  await page.goto(`${BASE_URL}/instances/${instance}`);
  await page.click(id("new-dataset"));
  await page.fill(id("dataset-name"), name);
  await page.fill(id("dataset-path"), path);
  await page.click(id("dataset-submit"));
  await page.waitForURL((url) => /^\/datasets\/\d+$/.test(url.pathname));
  await page.locator(id("dataset-title")).waitFor();
  return Number(new URL(page.url()).pathname.split("/")[2]);
}

async function images(dataset, query = "") {
  return (await apiOk("GET", `/api/datasets/${dataset}/images?per_page=500&${query}`)).items;
}

function byPath(list, path) {
  const img = list.find((i) => i.path === path);
  assert.ok(img, `no image ${path} in ${list.map((i) => i.path)}`);
  return img;
}

/** The canvas' view transform: page coordinates of image pixel (x, y). */
async function boardPoint(x, y, p = page) {
  const v = await p.$eval(id("board"), (c) => {
    const r = c.getBoundingClientRect();
    return { left: r.left, top: r.top, scale: +c.dataset.scale, tx: +c.dataset.tx, ty: +c.dataset.ty };
  });
  return [v.left + v.tx + x * v.scale, v.top + v.ty + y * v.scale];
}

async function drag(from, to, { steps = 8, p = page } = {}) {
  const a = await boardPoint(...from, p);
  const b = await boardPoint(...to, p);
  await p.mouse.move(...a);
  await p.mouse.down();
  await p.mouse.move(...b, { steps });
  await p.mouse.up();
}

async function openBoard(dataset, image, p = page) {
  await p.goto(`${BASE_URL}/datasets/${dataset}/label?image=${image}`);
  await p.locator(`${id("board")}[data-ready="true"][data-image-id="${image}"]`).waitFor();
}

function near(actual, expected, what, tolerance = 2) {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected about ${expected}`);
}

function assertBox(box, [xmin, ymin, xmax, ymax], label) {
  if (label) assert.equal(box.label, label);
  near(box.xmin, xmin, "xmin");
  near(box.ymin, ymin, "ymin");
  near(box.xmax, xmax, "xmax");
  near(box.ymax, ymax, "ymax");
}

function stats(values) {
  const v = [...values].sort((a, b) => a - b);
  const at = (q) => v[Math.min(v.length - 1, Math.floor(q * (v.length - 1) + 0.5))];
  const round = (x) => Math.round(x * 100) / 100;
  return { count: v.length, p50: round(at(0.5)), p95: round(at(0.95)), max: round(v[v.length - 1] ?? 0) };
}

// ---------------------------------------------------------------------------------------

step("a: admin logs in and creates an instance of each image type", async () => {
  await login(page, "admin", ADMIN_PASSWORD);
  made.clsInstance = await createInstance("image_classification", `pets_${RUN}`);
  made.detInstance = await createInstance("object_detection", `street_${RUN}`);
  made.ocrInstance = await createInstance("ocr", `plates_${RUN}`);
  // The instance page says honestly that there is nothing to train yet.
  await page.goto(`${BASE_URL}/instances/${made.clsInstance}`);
  await page.locator(id("datasets-empty")).waitFor();
  assert.equal(await text(id("tasks-empty")), "No training tasks yet.");
});

step("b: a classification dataset is indexed from a directory, with the skipped files reported", async () => {
  await page.goto(`${BASE_URL}/instances/${made.clsInstance}`);
  await page.click(id("new-dataset"));
  // Refusals are shown by their field: a bad name as it is typed, a bad path from the server.
  await page.fill(id("dataset-name"), "-pets");
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim().length > 0, id("dataset-name-error"));
  assert.match(await text(id("dataset-name-error")), /^dataset name must start with/);
  await page.fill(id("dataset-name"), "pets");
  await page.fill(id("dataset-path"), "/etc");
  await page.click(id("dataset-submit"));
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim().length > 0, id("dataset-path-error"));
  assert.match(await text(id("dataset-path-error")), /data root/);

  await page.fill(id("dataset-path"), join(FILES, "pets"));
  await page.click(id("dataset-submit"));
  await page.waitForURL((url) => /^\/datasets\/\d+$/.test(url.pathname));
  made.clsDataset = Number(new URL(page.url()).pathname.split("/")[2]);
  await page.locator(id("dataset-notice")).waitFor();
  assert.match(await text(id("dataset-notice")), /11 images indexed, 1 file skipped/);
  const report = page.locator(id("skipped-report"));
  await report.waitFor();
  assert.equal(await report.getAttribute("open"), "", "the report is open after creating");
  assert.equal(await page.locator(id("skipped-row")).count(), 1);
  assert.match(await text(id("skipped-row")), /cat\/broken\.png.*corrupt/s);
  const count = async (what) => Number(await text(`${id(`count-${what}`)} ${id("count-value")}`));
  assert.equal(await count("all"), made.cls.total);
  assert.equal(await count("labelled"), made.cls.labelled);
  assert.equal(await count("unlabelled"), made.cls.unlabelled);
  assert.equal(await text(`${id("label-chip")}[data-name="cat"] ${id("label-chip-count")}`), "3");

  // The counts filter the grid of thumbnails.
  await page.locator(id("thumb")).first().waitFor();
  assert.equal(await page.locator(id("thumb")).count(), 11);
  await page.click(id("count-unlabelled"));
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 6, id("thumb"));
  await page.click(`${id("label-chip")}[data-name="dog"]`);
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 2, id("thumb"));
  const thumb = await page.locator(`${id("thumb")} img`).first().getAttribute("src");
  assert.match(thumb, /^\/api\/images\/\d+\/thumbnail\?size=256$/);
  await page.click(id("clear-filter"));
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 11, id("thumb"));
  await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=thumb] img")].every((i) => i.complete && i.naturalWidth > 0));
  assert.equal(await page.locator(id("export")).getAttribute("href"), `/api/datasets/${made.clsDataset}/export?format=folder`);
  await shoot("dataset");

  await page.goto(`${BASE_URL}/instances/${made.clsInstance}`);
  const row = page.locator(`${id("dataset-row")}[data-name="pets"]`);
  await row.waitFor();
  assert.equal(await text(`${id("dataset-row")} ${id("dataset-total")}`), "11 images");
  await shoot("instance");
});

step("c: images are tagged by click, shift-click and the number keys; counts follow", async () => {
  await page.goto(`${BASE_URL}/datasets/${made.clsDataset}`);
  await page.click(id("start-labelling"));
  await page.waitForURL((url) => url.pathname.endsWith("/label") && url.searchParams.get("status") === "unlabelled");
  const items = page.locator(id("grid-item"));
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 6, id("grid-item"));
  await page.locator(`${id("tag")}[data-name="cat"]`).waitFor();
  assert.deepEqual(await page.locator(id("tag")).evaluateAll((els) => els.map((e) => e.dataset.name)), ["cat", "dog"]);

  const ids = await items.evaluateAll((els) => els.map((e) => Number(e.dataset.imageId)));
  await items.nth(0).click();
  await page.keyboard.press("1");
  // One image selected: tagging moves the selection on, so the next key tags the next one.
  await page.locator(`${id("grid-item")}[aria-selected="true"][data-image-id="${ids[1]}"]`).waitFor();
  await page.keyboard.press("2");
  await items.nth(2).click();
  await items.nth(3).click({ modifiers: ["Shift"] });
  await eventually(() => text(id("selection-count")), (t) => assert.equal(t, "2 selected"));
  await page.keyboard.press("1");
  // Ctrl-click adds to the selection; 0 clears the tag again.
  await items.nth(4).click();
  await page.keyboard.press("2");
  await items.nth(4).click();
  await items.nth(5).click({ modifiers: ["Control"] });
  await eventually(() => text(id("selection-count")), (t) => assert.equal(t, "2 selected"));
  await page.keyboard.press("0");

  const label = (n) => items.nth(n).getAttribute("data-label");
  await eventually(
    () => Promise.all([0, 1, 2, 3, 4, 5].map(label)),
    (l) => assert.deepEqual(l, ["cat", "dog", "cat", "cat", "", ""]),
  );
  await saved();
  // Counts come from a refetch after the saves; an earlier refetch may show cat's final
  // count while the last change (a cleared dog) is still on its way.
  await page.waitForFunction(
    ([cat, dog]) => document.querySelector(cat)?.textContent.trim() === "6" &&
      document.querySelector(dog)?.textContent.trim() === "3",
    [`${id("tag")}[data-name="cat"] ${id("tag-count")}`, `${id("tag")}[data-name="dog"] ${id("tag-count")}`],
  );
  const d = await apiOk("GET", `/api/datasets/${made.clsDataset}`);
  assert.deepEqual([d.labelled, d.unlabelled, d.per_label], [9, 2, { cat: 6, dog: 3 }]);
  const list = await images(made.clsDataset);
  assert.deepEqual(list.find((i) => i.id === ids[1]).annotation, { labels: ["dog"] });
  assert.deepEqual(list.find((i) => i.id === ids[4]).annotation, {});

  // Pages of 3, turned with the arrow keys.
  await page.selectOption(id("per-page"), "3");
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === "Page 1 of 2", id("page-info"));
  assert.equal(await items.count(), 3);
  await page.keyboard.press("ArrowRight");
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === "Page 2 of 2", id("page-info"));
  assert.equal(await items.first().getAttribute("data-image-id"), String(ids[3]));
  await page.keyboard.press("ArrowLeft");
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === "Page 1 of 2", id("page-info"));
  await page.selectOption(id("per-page"), "9");
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 6, id("grid-item"));
  await items.nth(0).click();
  await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=grid-item] img")].every((i) => i.complete && i.naturalWidth > 0));
  await shoot("classification");

  // The preview shows the result grouped by tag.
  await page.keyboard.press("p");
  await page.locator(id("preview")).waitFor();
  assert.equal(await text(`${id("preview-group")}[data-name="cat"] ${id("preview-count")}`), "3");
  assert.equal(await text(`${id("preview-group")}[data-name=""] ${id("preview-count")}`), "2");
  await page.keyboard.press("p");
  await page.locator(id("label-grid")).waitFor();

  // Skip takes an image out of the dataset; undo brings it back.
  await items.nth(5).click();
  await page.keyboard.press("s");
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 5, id("grid-item"));
  await eventually(() => apiOk("GET", `/api/datasets/${made.clsDataset}`), (ds) => assert.equal(ds.deleted, 1));
  await page.click(id("undo-skip"));
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 6, id("grid-item"));
  await eventually(() => apiOk("GET", `/api/datasets/${made.clsDataset}`), (ds) => assert.equal(ds.deleted, 0));

  // Finishing returns to the overview, which shows the new counts.
  await page.click(id("finish"));
  await page.waitForURL((url) => url.pathname === `/datasets/${made.clsDataset}`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === "9", `${id("count-labelled")} ${id("count-value")}`);
  assert.equal(await text(`${id("count-unlabelled")} ${id("count-value")}`), "2");
});

step("d: tags are added, renamed and deleted", async () => {
  await page.goto(`${BASE_URL}/datasets/${made.clsDataset}/label?status=all`);
  await page.locator(`${id("tag")}[data-name="dog"]`).waitFor();
  // The tag rule is the server's: ASCII only.
  await page.fill(id("tag-new"), "猫");
  await page.click(id("tag-add"));
  await page.locator(id("tag-error")).waitFor();
  assert.match(await text(id("tag-error")), /label name/i);
  await page.fill(id("tag-new"), "bird");
  await page.click(id("tag-add"));
  await page.locator(`${id("tag")}[data-name="bird"]`).waitFor();
  assert.equal(await text(`${id("tag")}[data-name="bird"] ${id("tag-count")}`), "0");

  await page.click(`${id("tag")}[data-name="dog"] ${id("tag-rename")}`);
  await page.fill(id("tag-rename-input"), "puppy");
  await page.click(id("tag-rename-save"));
  await page.locator(`${id("tag")}[data-name="puppy"]`).waitFor();
  assert.equal(await text(`${id("tag")}[data-name="puppy"] ${id("tag-count")}`), "3");
  assert.equal(await page.locator(`${id("tag")}[data-name="dog"]`).count(), 0);
  // The images in the grid carry the new name.
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 3, `${id("grid-item")}[data-label="puppy"]`);

  await page.click(`${id("tag")}[data-name="bird"] ${id("tag-delete")}`);
  await page.waitForFunction((sel) => !document.querySelector(sel), `${id("tag")}[data-name="bird"]`);
  const labels = await apiOk("GET", `/api/datasets/${made.clsDataset}/labels`);
  assert.deepEqual(labels, [{ name: "cat", count: 6 }, { name: "puppy", count: 3 }]);
  const d = await apiOk("GET", `/api/datasets/${made.clsDataset}`);
  assert.deepEqual(d.per_label, { cat: 6, puppy: 3 });
});

step("e: detection boxes are drawn, moved, resized, relabelled, deleted and repeated", async () => {
  made.detDataset = await createDataset(made.detInstance, "street", join(FILES, "street"));
  const list = await images(made.detDataset);
  made.det = Object.fromEntries(list.map((i) => [i.path, i.id]));
  await openBoard(made.detDataset, made.det["a.png"]);
  for (const tag of ["car", "person"]) {
    await page.fill(id("tag-new"), tag);
    await page.click(id("tag-add"));
    await page.locator(`${id("tag")}[data-name="${tag}"]`).waitFor();
  }
  const boxesOf = async (path) => byPath(await images(made.detDataset), path).annotation.boxes ?? [];

  // Draw: a drag on an empty spot.
  await drag([100, 100], [300, 250]);
  await saved();
  let boxes = await eventually(() => boxesOf("a.png"), (b) => assert.equal(b.length, 1));
  assertBox(boxes[0], [100, 100, 300, 250], "car");
  assert.equal(await text(id("box-count")), "1 box");

  // Move: a drag inside the box.
  await drag([200, 175], [250, 205]);
  await saved();
  boxes = await eventually(() => boxesOf("a.png"), (b) => near(b[0].xmin, 150, "moved xmin"));
  assertBox(boxes[0], [150, 130, 350, 280], "car");

  // Resize: a drag on the selected box's bottom-right handle.
  await drag([350, 280], [420, 330]);
  await saved();
  boxes = await eventually(() => boxesOf("a.png"), (b) => near(b[0].xmax, 420, "resized xmax"));
  assertBox(boxes[0], [150, 130, 420, 330], "car");
  const shown = (await text(id("box-coords"))).match(/^([\d.]+), ([\d.]+) – ([\d.]+), ([\d.]+)/).slice(1).map(Number);
  [150, 130, 420, 330].forEach((v, i) => near(shown[i], v, "shown coordinate"));

  // Relabel with a number key, then delete with Delete.
  await page.keyboard.press("2");
  await saved();
  await eventually(() => boxesOf("a.png"), (b) => assert.equal(b[0].label, "person"));
  await page.keyboard.press("Delete");
  await saved();
  await eventually(() => boxesOf("a.png"), (b) => assert.equal(b.length, 0));
  assert.equal(await text(id("box-count")), "0 boxes");

  // Two boxes to keep: a number key relabels the selected (new) box.
  await drag([60, 60], [200, 180]);
  await page.keyboard.press("1");
  await drag([300, 200], [460, 400]);
  await page.keyboard.press("2");
  await saved();
  boxes = await eventually(() => boxesOf("a.png"), (b) => assert.equal(b.length, 2));
  assertBox(boxes[0], [60, 60, 200, 180], "car");
  assertBox(boxes[1], [300, 200, 460, 400], "person");

  // Undo and redo (of the relabelling).
  await page.keyboard.press("Control+z");
  await saved();
  await eventually(() => boxesOf("a.png"), (b) => assert.deepEqual(b.map((x) => x.label), ["car", "car"]));
  await page.keyboard.press("Control+Shift+z");
  await saved();
  await eventually(() => boxesOf("a.png"), (b) => assert.deepEqual(b.map((x) => x.label), ["car", "person"]));

  // Next image with D; R repeats the previous image's boxes.
  await page.keyboard.press("d");
  await page.locator(`${id("board")}[data-ready="true"][data-image-id="${made.det["b.png"]}"]`).waitFor();
  assert.equal(new URL(page.url()).searchParams.get("image"), String(made.det["b.png"]));
  await page.keyboard.press("r");
  await saved();
  boxes = await eventually(() => boxesOf("b.png"), (b) => assert.equal(b.length, 2));
  assertBox(boxes[1], [300, 200, 460, 400], "person");
  await page.keyboard.press("Tab");
  await page.locator(id("selected-box")).waitFor();
  await page.waitForTimeout(100);
  await shoot("detection", { fullPage: false });

  // Zoom with the wheel at the pointer, pan with space + drag, fit with F.
  const scale = async () => Number(await page.getAttribute(id("board"), "data-scale"));
  const fit = await scale();
  const [px, py] = await boardPoint(320, 240);
  await page.mouse.move(px, py);
  for (let i = 0; i < 5; i++) await page.mouse.wheel(0, -120);
  await page.waitForFunction(([sel, s]) => Number(document.querySelector(sel).dataset.scale) > s * 1.5, [id("board"), fit]);
  // The image point under the pointer stays under it.
  const [zx, zy] = await boardPoint(320, 240);
  near(zx, px, "zoom keeps x under the pointer", 1);
  near(zy, py, "zoom keeps y under the pointer", 1);
  const tx = Number(await page.getAttribute(id("board"), "data-tx"));
  await page.keyboard.down("Space");
  await page.mouse.down();
  await page.mouse.move(px + 80, py + 40, { steps: 4 });
  await page.mouse.up();
  await page.keyboard.up("Space");
  await page.waitForFunction(([sel, t]) => Math.abs(Number(document.querySelector(sel).dataset.tx) - (t + 80)) < 1, [id("board"), tx]);
  // Panning drew nothing.
  assert.equal((await boxesOf("b.png")).length, 2);
  await page.keyboard.press("f");
  await page.waitForFunction(([sel, s]) => Math.abs(Number(document.querySelector(sel).dataset.scale) - s) < 1e-9, [id("board"), fit]);
});

step("f: OCR boxes take a Unicode transcription", async () => {
  made.ocrDataset = await createDataset(made.ocrInstance, "plates", join(FILES, "plates"));
  const list = await images(made.ocrDataset);
  made.ocr = Object.fromEntries(list.map((i) => [i.path, i.id]));
  await openBoard(made.ocrDataset, made.ocr["plate1.png"]);
  await drag([40, 60], [300, 150]);
  // The new box's text field takes the typing at once.
  await page.waitForFunction(() => document.activeElement?.dataset?.testid === "ocr-text");
  await page.keyboard.type(PLATE);
  await page.keyboard.press("Enter");
  await drag([320, 170], [460, 220]);
  await page.waitForFunction(() => document.activeElement?.dataset?.testid === "ocr-text");
  await page.locator(id("ocr-text")).nth(1).fill("Ünïcödé ok");
  await saved();
  const boxes = await eventually(
    async () => byPath(await images(made.ocrDataset), "plate1.png").annotation.boxes ?? [],
    (b) => assert.deepEqual(b.map((x) => x.text), [PLATE, "Ünïcödé ok"]),
  );
  assertBox(boxes[0], [40, 60, 300, 150], "text");
  await page.click(id("board"), { position: { x: 5, y: 5 } });
  await shoot("ocr", { fullPage: false });
});

step("f2: a save that fails is kept, shown and retried until it lands, even after leaving the page", async () => {
  const image = made.det["c.png"];
  await openBoard(made.detDataset, image);
  // The server cannot be reached for a while.
  let refused = 0;
  const cut = (route) => {
    refused += 1;
    return route.abort("connectionrefused");
  };
  await page.route("**/api/images/*/annotation", cut);
  await drag([100, 100], [220, 200]);
  await page.locator(`${id("save-status")}[data-state="retrying"]`).waitFor();
  assert.match(await text(id("save-error")), /Not saved yet.*Retrying in \d+ s/);
  // Changes made meanwhile join the queue; the newest state is what gets saved.
  await drag([300, 250], [400, 330]);
  await eventually(async () => refused, (n) => assert.ok(n >= 2, `${n} attempts`), 10_000);
  // Leaving the page does not drop the change, and the banner comes along.
  await page.click(`.breadcrumb a[href="/datasets/${made.detDataset}"]`);
  await page.locator(id("dataset-title")).waitFor();
  await page.locator(id("save-error")).waitFor();
  await page.unroute("**/api/images/*/annotation", cut);
  await page.locator(id("save-error")).waitFor({ state: "detached", timeout: 20_000 });
  const boxes = byPath(await images(made.detDataset), "c.png").annotation.boxes;
  assert.equal(boxes.length, 2);
  assertBox(boxes[0], [100, 100, 220, 200]);
  assertBox(boxes[1], [300, 250, 400, 330]);
});

step("g: after a reload everything is as it was left", async () => {
  await openBoard(made.ocrDataset, made.ocr["plate1.png"]);
  await page.reload();
  await page.locator(`${id("board")}[data-ready="true"]`).waitFor();
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 2, id("ocr-text"));
  assert.deepEqual(await page.locator(id("ocr-text")).evaluateAll((els) => els.map((e) => e.value)), [PLATE, "Ünïcödé ok"]);

  await openBoard(made.detDataset, made.det["a.png"]);
  assert.equal(await text(id("box-count")), "2 boxes");
  await openBoard(made.detDataset, made.det["b.png"]);
  assert.equal(await text(id("box-count")), "2 boxes");

  await page.goto(`${BASE_URL}/datasets/${made.clsDataset}`);
  await page.locator(id("counts")).waitFor();
  assert.equal(await text(`${id("count-labelled")} ${id("count-value")}`), "9");
  assert.equal(await text(`${id("label-chip")}[data-name="puppy"] ${id("label-chip-count")}`), "3");
  // Re-indexing keeps the labels made in the browser.
  await page.click(id("reindex"));
  await page.locator(id("dataset-notice")).waitFor();
  assert.match(await text(id("dataset-notice")), /^Re-indexed: 11 images, 1 file skipped\.$/);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === "9", `${id("count-labelled")} ${id("count-value")}`);
  assert.equal(await text(`${id("label-chip")}[data-name="puppy"] ${id("label-chip-count")}`), "3");
  await page.waitForTimeout(300);
  assert.match(await text(id("dataset-notice")), /^Re-indexed/, "the notice outlives the reload of the counts");
  await page.goto(`${BASE_URL}/datasets/${made.clsDataset}/label?status=all`);
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 9, `${id("grid-item")}:not([data-label=""])`);
});

step("h: a user without LabelInstance sees the refusal and nothing changes", async () => {
  const username = `viewer_${RUN}`;
  const password = "viewer-password-1";
  await apiOk("POST", "/api/users", { username, password, permissions: [{ permission: "ListInstance" }] });
  const before = await images(made.clsDataset);
  const target = before.find((i) => i.annotation.labels?.[0] === "cat");
  const detBefore = byPath(await images(made.detDataset), "a.png").annotation;

  const viewer = await browser.newContext({ viewport: DESKTOP });
  const vp = await viewer.newPage();
  watch(vp);
  try {
    await login(vp, username, password);
    await vp.goto(`${BASE_URL}/datasets/${made.clsDataset}/label?status=all`);
    const item = vp.locator(`${id("grid-item")}[data-image-id="${target.id}"]`);
    await item.waitFor();
    await vp.locator(`${id("tag")}[data-name="puppy"]`).waitFor();
    await item.click();
    await vp.keyboard.press("2");
    const banner = vp.locator(id("save-error"));
    await banner.waitFor();
    assert.match(await text(id("save-error"), vp), /LabelInstance/);
    // The grid shows what the server holds again.
    await vp.waitForFunction(([sel]) => document.querySelector(sel)?.dataset.label === "cat", [`${id("grid-item")}[data-image-id="${target.id}"]`]);
    await vp.fill(id("tag-new"), "sneaky");
    await vp.click(id("tag-add"));
    await vp.locator(id("tag-error")).waitFor();
    assert.match(await text(id("tag-error"), vp), /LabelInstance/);

    await openBoard(made.detDataset, made.det["a.png"], vp);
    await drag([480, 300], [600, 420], { p: vp });
    await vp.locator(id("save-error")).waitFor();
    assert.match(await text(id("save-error"), vp), /LabelInstance/);
    await vp.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === "2 boxes", id("box-count"));
  } finally {
    await viewer.close();
  }
  const after = await images(made.clsDataset);
  assert.deepEqual(after.map((i) => [i.id, i.annotation]), before.map((i) => [i.id, i.annotation]));
  assert.deepEqual(await apiOk("GET", `/api/datasets/${made.clsDataset}/labels`), [{ name: "cat", count: 6 }, { name: "puppy", count: 3 }]);
  assert.deepEqual(byPath(await images(made.detDataset), "a.png").annotation, detBefore);
});

step("i: ? opens the keyboard help", async () => {
  await openBoard(made.detDataset, made.det["a.png"]);
  await page.keyboard.press("?");
  await page.locator(id("help-overlay")).waitFor();
  assert.match(await text(id("help-overlay")), /Repeat the previous image's boxes/);
  await shoot("help", { fullPage: false });
  await page.keyboard.press("Escape");
  await page.locator(id("help-overlay")).waitFor({ state: "detached" });
  // The header button opens it too.
  await page.click(id("help-button"));
  await page.locator(id("help-overlay")).waitFor();
  await page.click(id("help-close"));
  await page.locator(id("help-overlay")).waitFor({ state: "detached" });
});

step("j: benchmark: a page of 100 thumbnails loads in a fresh browser", async () => {
  const instance = made.clsInstance;
  const ds = await apiOk("POST", `/api/instances/${instance}/datasets`, { name: "many", path: join(FILES, "many") });
  assert.equal(ds.total, 120);
  const url = `${BASE_URL}/datasets/${ds.id}/label?status=all&per=100`;
  const runs = [];
  for (const server of ["cold", "warm"]) {
    // A new context has an empty cache: the app, the image list and every thumbnail come
    // over the network (loopback).
    const fresh = await browser.newContext({ viewport: DESKTOP });
    try {
      const login = await fresh.request.post(`${BASE_URL}/api/auth/login`, { data: { username: "admin", password: ADMIN_PASSWORD } });
      assert.equal(login.status(), 200);
      const p = await fresh.newPage();
      watch(p);
      await p.goto(url, { waitUntil: "commit" });
      const ms = await p.waitForFunction(
        () => {
          const imgs = [...document.querySelectorAll("[data-testid=grid-item] img")];
          return imgs.length === 100 && imgs.every((i) => i.complete && i.naturalWidth > 0) && performance.now();
        },
        null,
        { polling: "raf", timeout: 30_000 },
      );
      const loaded = await ms.jsonValue();
      const thumbs = await p.evaluate(() =>
        performance.getEntriesByType("resource").filter((e) => e.name.includes("/thumbnail")).length,
      );
      runs.push({ server_thumbnail_cache: server, ms: Math.round(loaded), thumbnails_fetched: thumbs });
    } finally {
      await fresh.close();
    }
  }
  bench.thumbnails = {
    what: "navigation start to all 100 <img> complete with naturalWidth > 0, /datasets/{id}/label?per=100, fresh browser context (empty cache), loopback",
    target_ms: 1500,
    runs,
  };
  const warm = runs.find((r) => r.server_thumbnail_cache === "warm");
  bench.thumbnails.meets_target = warm.ms < 1500;
  // The figure is the deliverable; the assertion only catches gross regressions (the
  // machine may be busy with other work while the suite runs).
  assert.ok(warm.ms < 3000, `100 thumbnails took ${warm.ms} ms`);
}, 120_000);

step("k: benchmark: dragging a box among 1,000 keeps frames short", async () => {
  const big = made.det["zz-big.png"];
  const boxes = [];
  for (let r = 0; r < 25; r++) {
    for (let c = 0; c < 40; c++) {
      boxes.push({ label: c % 2 ? "car" : "person", xmin: c * 50 + 5, ymin: r * 60 + 5, xmax: c * 50 + 45, ymax: r * 60 + 55 });
    }
  }
  await apiOk("PUT", `/api/images/${big}/annotation`, { boxes });
  await openBoard(made.detDataset, big);
  assert.equal(await text(id("box-count")), "1000 boxes");
  await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));

  const measure = async (action) => {
    await page.evaluate(() => {
      window.__frameTimes = [];
      window.__raf = [];
      window.__rafOn = true;
      let last = performance.now();
      const tick = (t) => {
        window.__raf.push(t - last);
        last = t;
        if (window.__rafOn) requestAnimationFrame(tick);
      };
      requestAnimationFrame((t) => {
        last = t;
        requestAnimationFrame(tick);
      });
    });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const start = Date.now();
    await action();
    const ms = Date.now() - start;
    await page.evaluate(() => new Promise((r) => setTimeout(r, 100)));
    const { frames, raf } = await page.evaluate(() => {
      window.__rafOn = false;
      return { frames: window.__frameTimes, raf: window.__raf };
    });
    return { action_ms: ms, render_ms: stats(frames), raf_interval_ms: stats(raf) };
  };

  // Box (20, 12) is centred on (1025, 750); drag it by (150, 90) image pixels in 60 moves.
  const from = await boardPoint(1025, 750);
  const to = await boardPoint(1175, 840);
  const dragging = await measure(async () => {
    await page.mouse.move(...from);
    await page.mouse.down();
    await page.mouse.move(...to, { steps: 60 });
    await page.mouse.up();
  });
  await saved();
  const moved = (await apiOk("GET", `/api/images/${big}`)).annotation.boxes;
  assert.equal(moved.length, 1000);
  assertBox(moved[20 + 12 * 40], [1155, 815, 1195, 865]);

  // Zooming redraws the image and all 1,000 boxes every frame.
  await page.mouse.move(...(await boardPoint(1000, 750)));
  const zooming = await measure(async () => {
    for (let i = 0; i < 20; i++) await page.mouse.wheel(0, i < 10 ? -100 : 100);
  });

  bench.drag_1000_boxes = {
    what: "a 2000x1500 image with 1,000 boxes; one box dragged with 60 pointer moves; render_ms = time inside the app's canvas redraw per frame (window.__frameTimes), raf_interval_ms = requestAnimationFrame intervals meanwhile",
    target_ms: 16,
    ...dragging,
  };
  bench.zoom_1000_boxes = {
    what: "20 wheel steps over the same image: every frame redraws the image and all 1,000 boxes",
    ...zooming,
  };
  bench.drag_1000_boxes.meets_target = dragging.render_ms.p95 < 16;
  assert.ok(dragging.render_ms.count > 5, "frames were drawn while dragging");
  assert.ok(dragging.render_ms.p95 < 16, `p95 frame render ${dragging.render_ms.p95} ms`);
}, 120_000);

step("l: the browser figures are written down", async () => {
  const out = {
    generated_at: new Date().toISOString(),
    browser: `Chromium ${browser.version()} headless, --disable-gpu (software rendering)`,
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, load_average_1m: Math.round(os.loadavg()[0] * 100) / 100 },
    viewport: DESKTOP,
    base_url: BASE_URL,
    ...bench,
  };
  await writeFile(BENCHMARKS, JSON.stringify(out, null, 2) + "\n");
});
