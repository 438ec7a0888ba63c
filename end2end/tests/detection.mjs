// Object detection in the browser, in headless Chromium against a running server (the same
// settings as training.mjs: a worker, short budgets allowed, DATA_DIR for the demo's files):
// creates the scenes demo from the instances page, trains detection-fast at 128 px through
// the task form, opens the model page (mAP, AP per class, the precision-recall curves, the
// validation images with true and predicted boxes, the confidence slider redrawing them),
// then runs the model in this browser on the try page (CPU backend) on a validation image,
// which draws the boxes, and checks its answer against POST /api/predict of a service of the
// same version: the same labels and boxes. Leaves docs/screenshots/detection-{model,try}-*.png.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { SCREENSHOTS, RESULTS, BASE_URL, ADMIN_PASSWORD, DESKTOP, PHONE, LAUNCH } from "./env.mjs";

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

step("c: the try page draws the browser's boxes, and they equal the predict API's", async () => {
  // The image as the server has it (the demo's own file, through the content route).
  const bytes = await page.evaluate(async (image) => {
    const res = await fetch(`/api/images/${image}/content`);
    return Array.from(new Uint8Array(await res.arrayBuffer()));
  }, made.valImage);
  const file = join(RESULTS, `scene-${RUN}.png`);
  await import("node:fs/promises").then((fs) => fs.writeFile(file, Buffer.from(bytes)));
  await page.goto(`${BASE_URL}/models/${made.model}/try?backend=cpu`);
  await page.locator(id("try-file")).waitFor({ state: "attached", timeout: 60_000 });
  await page.setInputFiles(id("try-file"), file);
  await page.locator(`${id("try-answer")}[data-runs="1"]`).waitFor({ timeout: 60_000 });
  const browserBody = JSON.parse(await page.locator(id("try-json")).textContent());
  assert.ok(browserBody.length > 0, "the browser found boxes");
  assert.equal(await page.locator(`${id("try-boxes")} ${id("drawn-box")}`).count(), browserBody.length);
  await shoot("detection-try");

  const deployed = await api("POST", `/api/models/${made.model}/services`, { name: `scenes-${RUN}` });
  assert.equal(deployed.status, 201, JSON.stringify(deployed.json));
  const b64 = Buffer.from(await readFile(file)).toString("base64");
  let answer;
  for (let i = 0; i < 120; i++) {
    answer = await page.evaluate(
      async ([name, token, b64]) => {
        const res = await fetch(`/api/predict/${name}`, {
          method: "POST",
          headers: { authorization: token, "content-type": "application/json" },
          body: JSON.stringify({ dataArray: [{ body: b64 }] }),
        });
        return res.json();
      },
      [`scenes-${RUN}`, deployed.json.token, b64],
    );
    if (answer.success) break;
    await page.waitForTimeout(500);
  }
  assert.equal(answer.success, true, JSON.stringify(answer));
  const serverBody = answer.result.output[0].body;
  assert.equal(serverBody.length, browserBody.length, `${JSON.stringify(serverBody)} vs ${JSON.stringify(browserBody)}`);
  serverBody.forEach((s, i) => {
    const b = browserBody[i];
    assert.equal(b.label, s.label);
    assert.ok(Math.abs(b.conf - s.conf) < 1e-3, `conf ${b.conf} vs ${s.conf}`);
    s.pos.flat().forEach((v, k) => assert.ok(Math.abs(v - b.pos.flat()[k]) < 1e-3, `pos ${b.pos} vs ${s.pos}`));
  });
}, 3 * 60_000);
