// Assisted labelling in the browser, measured: 100 images of the alpaca set (copied flat, so
// they arrive untagged) are tagged twice, every tag right in the end (checked through the
// API), counting the clicks and keys a person needs:
//   by hand:  click the first image, then one number key per image (the selection moves on);
//   assisted: tag 3 images of each tag by hand, turn "Suggest tags" on, retag the images whose
//             suggestion is wrong (click + number key; the suggestions refit after each),
//             "Accept this page", then click + number key for anything left wrong or untagged.
// Needs ../shared/datasets/alpaca-vs-not-alpaca (AUTOLEARN_ALLOW_SKIP=1 skips it when
// absent). Prints the counts and writes them to end2end/test-results/assist.json.
//
//   BASE_URL=... ADMIN_PASSWORD=... DATA_DIR=<the server's data directory> npm test

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, readdir, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT, RESULTS, BASE_URL, ADMIN_PASSWORD, DESKTOP, LAUNCH } from "./env.mjs";

const DATA_DIR = process.env.DATA_DIR;
const ALPACA = join(ROOT, "..", "shared", "datasets", "alpaca-vs-not-alpaca");
const RUN = Date.now().toString(36);
const N = 100;
const TAGS = ["alpaca", "not_alpaca"];

const id = (testid) => `[data-testid="${testid}"]`;
let browser;
let page;
const truth = new Map(); // file name -> tag
const figures = {};
const missing = !existsSync(ALPACA);

before(async () => {
  if (missing) {
    assert.ok(
      process.env.AUTOLEARN_ALLOW_SKIP === "1",
      `the alpaca set is missing at ${ALPACA}; set AUTOLEARN_ALLOW_SKIP=1 to skip this test`,
    );
    return;
  }
  assert.ok(ADMIN_PASSWORD && DATA_DIR, "set ADMIN_PASSWORD and DATA_DIR");
  await mkdir(RESULTS, { recursive: true });
  // Half of each class, flat in two folders (one per run), so nothing is tagged by folder.
  for (const tag of TAGS) {
    const names = (await readdir(join(ALPACA, tag))).filter((n) => n.endsWith(".jpg")).sort();
    for (const name of names.slice(0, N / 2)) truth.set(name, tag);
  }
  for (const run of ["manual", "assisted"]) {
    const dir = join(DATA_DIR, "datasets", `e2e-assist-${RUN}`, run);
    await mkdir(dir, { recursive: true });
    for (const [name, tag] of truth) await copyFile(join(ALPACA, tag, name), join(dir, name));
  }
  browser = await chromium.launch(LAUNCH);
  page = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  page.setDefaultTimeout(20_000);
  await page.goto(`${BASE_URL}/login`);
  await page.fill(id("login-username"), "admin");
  await page.fill(id("login-password"), ADMIN_PASSWORD);
  await page.click(id("login-submit"));
  await page.waitForURL((url) => url.pathname === "/");
});

after(async () => {
  await browser?.close();
});

async function api(method, path, body) {
  const res = await page.evaluate(
    async ([method, path, body]) => {
      const r = await fetch(path, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, text: await r.text() };
    },
    [method, path, body],
  );
  assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${res.text}`);
  return res.text ? JSON.parse(res.text) : null;
}

/** A dataset of the run's folder with both tags made; opens its labelling page. */
async function open(instance, run) {
  const ds = await api("POST", `/api/instances/${instance}/datasets`, {
    name: run,
    path: join(DATA_DIR, "datasets", `e2e-assist-${RUN}`, run),
  });
  for (const name of TAGS) await api("POST", `/api/datasets/${ds.id}/labels`, { name });
  await page.goto(`${BASE_URL}/datasets/${ds.id}/label?status=all&per=100&page=1`);
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 100, id("grid-item"));
  const order = await page.locator(id("tag")).evaluateAll((els) => els.map((e) => e.dataset.name));
  const key = (tag) => String(order.indexOf(tag) + 1);
  const grid = await page
    .locator(id("grid-item"))
    .evaluateAll((els) => els.map((e) => ({ id: Number(e.dataset.imageId), path: e.dataset.path })));
  return { ds: ds.id, key, grid };
}

const item = (image) => page.locator(`${id("grid-item")}[data-image-id="${image}"]`);

async function isSelected(image) {
  return (await item(image).getAttribute("aria-selected")) === "true";
}

async function allRight(ds) {
  await page.locator(`${id("save-status")}[data-state="saved"]`).waitFor();
  const imgs = (await api("GET", `/api/datasets/${ds}/images?per_page=500`)).items;
  assert.equal(imgs.length, N);
  const wrong = imgs.filter((i) => i.annotation.labels?.[0] !== truth.get(i.path));
  assert.deepEqual(wrong.map((i) => i.path), [], "every image carries its right tag");
}

test("tagging 100 alpaca images takes at least 2x fewer actions with suggestions", { timeout: 600_000 }, async (t) => {
  if (missing) return t.skip(`no alpaca set at ${ALPACA}`);
  const instance = (await api("POST", "/api/instances", { type: "image_classification", name: `assist-${RUN}` })).id;

  // By hand.
  const manual = await open(instance, "manual");
  let actions = 0;
  for (const { id: image, path } of manual.grid) {
    if (!(await isSelected(image))) {
      await item(image).click();
      actions++;
    }
    await page.keyboard.press(manual.key(truth.get(path)));
    actions++;
  }
  await allRight(manual.ds);
  figures.manual = actions;

  // With suggestions.
  const assisted = await open(instance, "assisted");
  const handCounts = Object.fromEntries(TAGS.map((t) => [t, 0]));
  let steps = 0;
  for (const { id: image, path } of assisted.grid) {
    const tag = truth.get(path);
    if (handCounts[tag] >= 3) continue;
    if (!(await isSelected(image))) {
      await item(image).click();
      steps++;
    }
    await page.keyboard.press(assisted.key(tag));
    steps++;
    handCounts[tag]++;
    if (TAGS.every((t) => handCounts[t] >= 3)) break;
  }
  await page.click(id("suggest-toggle"));
  steps++;
  const t0 = Date.now();
  await page.waitForFunction(
    (sel) => /suggestions learnt/.test(document.querySelector(sel)?.textContent ?? ""),
    id("suggest-status"),
    { timeout: 180_000 },
  );
  figures.first_suggestions_ms = Date.now() - t0;
  // Review the page: retag the untagged images whose suggestion is wrong (each retag refits
  // the suggestions, so look again after each), then accept the rest of the page at once.
  const settled = async () => {
    await page.locator(`${id("save-status")}[data-state="saved"]`).waitFor();
    await page.locator(`${id("suggest-status")}[data-busy="false"]`).waitFor();
  };
  let retagged = 0;
  for (;;) {
    await settled();
    const wrong = await page.locator(id("grid-item")).evaluateAll(
      (els, truth) =>
        els
          .filter((e) => e.dataset.label === "")
          .map((e) => ({
            id: Number(e.dataset.imageId),
            path: e.dataset.path,
            suggested: e.querySelector('[data-testid="grid-suggestion"]')?.dataset.suggested ?? null,
          }))
          .filter((x) => x.suggested !== truth[x.path]),
      Object.fromEntries(truth),
    );
    if (wrong.length === 0) break;
    if (!(await isSelected(wrong[0].id))) {
      await item(wrong[0].id).click();
      steps++;
    }
    await page.keyboard.press(assisted.key(truth.get(wrong[0].path)));
    steps++;
    retagged++;
  }
  await page.click(id("accept-page"));
  steps++;
  await settled();
  figures.retagged = retagged;
  const afterAccept = (await api("GET", `/api/datasets/${assisted.ds}/images?per_page=500`)).items;
  figures.accepted = afterAccept.filter((i) => i.labelled).length - 6 - retagged;
  figures.accepted_wrong = afterAccept.filter(
    (i) => i.labelled && i.annotation.labels[0] !== truth.get(i.path),
  ).length;
  // Anything still untagged, one by one.
  for (const { id: image, path } of assisted.grid) {
    if ((await item(image).getAttribute("data-label")) !== "") continue;
    if (!(await isSelected(image))) {
      await item(image).click();
      steps++;
    }
    await page.keyboard.press(assisted.key(truth.get(path)));
    steps++;
  }
  // Accepted suggestions that were wrong: click and retype.
  for (const { id: image, path } of assisted.grid) {
    const label = await item(image).getAttribute("data-label");
    if (label === truth.get(path)) continue;
    await item(image).click();
    await page.keyboard.press(assisted.key(truth.get(path)));
    steps += 2;
  }
  await allRight(assisted.ds);
  figures.assisted = steps;
  figures.ratio = +(figures.manual / figures.assisted).toFixed(2);
  console.log(`# assisted labelling, ${N} alpaca images:`, JSON.stringify(figures));
  await writeFile(join(RESULTS, "assist.json"), JSON.stringify(figures, null, 2) + "\n");
  assert.ok(figures.ratio >= 2, `by hand ${figures.manual} actions, assisted ${figures.assisted}`);
});
