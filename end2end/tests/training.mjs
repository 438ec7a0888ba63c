// Training in the browser (SPEC §5), in headless Chromium against a running server:
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_PASSWORD=... npm test
//
// The server must run a worker and accept short budgets (scripts/test.sh starts it with
// AUTOLEARN_WORKERS=1 AUTOLEARN_MIN_TASK_MINUTES=0 and the weights cache). Creates the shapes
// demo from the instances page, fills the task form (client and server refusals shown by
// their field), trains for half a minute at 64 px and 2 epochs, watches the live curves,
// progress and log on the task page until the task succeeds, then checks the model page:
// metrics, per-class table, the 3×3 confusion matrix over the 12 validation images and the
// drill-down into a cell's images. Then deploys the model from its page (the token shown
// once, the curl line), waits on the service page until the model has loaded, sends a shapes
// image through "Try it" (with a wrong token first), changes the replicas, sees the service
// on the instance page and the delete of the deployed model refused, undeploys, and finally
// deletes the model. DATA_DIR (the server's data root) lets "Try it" send one of the demo's
// own circles; without it a picture drawn here is sent. Leaves
// docs/screenshots/{training-task,training-model,deploy-model,deploy-service,training-instance}-{desktop,phone}.png.
// Steps run in order and share one browser context; a failing step leaves a screenshot in
// end2end/test-results/.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { access, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { SCREENSHOTS, RESULTS, BASE_URL, ADMIN_PASSWORD, DESKTOP, PHONE, LAUNCH } from "./env.mjs";
import { picture, writeFileIn } from "./fixtures.mjs";

const RUN = Date.now().toString(36);
const TASK = `shapes-${RUN}`;
const LABELS = ["circle", "square", "triangle"];
/** How long training may take on a CPU-only test machine. */
const TRAINING_MS = 5 * 60_000;
const SERVICE = `shapes-svc-${RUN}`;
/** How long a deployed model may take to load. */
const LOADING_MS = 2 * 60_000;
const DATA_DIR = process.env.DATA_DIR;

let browser;
let context;
let page;
const pageErrors = [];
// What earlier steps made, for later ones.
const made = {};

const id = (testid) => `[data-testid="${testid}"]`;

before(async () => {
  assert.ok(ADMIN_PASSWORD, "set ADMIN_PASSWORD to the admin password of the server under test");
  await mkdir(SCREENSHOTS, { recursive: true });
  await mkdir(RESULTS, { recursive: true });
  browser = await chromium.launch(LAUNCH);
  context = await browser.newContext({ viewport: DESKTOP });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /panicked/.test(msg.text())) pageErrors.push(msg.text());
  });
  // Deleting asks first; the tests always agree.
  page.on("dialog", (dialog) => dialog.accept());
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
      const file = join(RESULTS, `training-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
      await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
      throw err;
    }
  });
}

/** Screenshots of the current page at desktop and phone width. */
async function shoot(name) {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    // From the top, so the sticky header is where it belongs in a full-page shot.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size}.png`), fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
}

async function text(selector) {
  return (await page.locator(selector).first().textContent()).trim();
}

/** Waits until the element's text is not empty, and returns it. */
async function filled(selector) {
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim().length > 0, selector);
  return text(selector);
}

/** Calls the API with the page's session cookie. */
async function apiGet(path) {
  return page.evaluate(async (path) => {
    const res = await fetch(path);
    return { status: res.status, json: res.ok ? await res.json() : null };
  }, path);
}

/** Fills the task form of the current instance page (opened) for the test's training run. */
async function fillTaskForm(name) {
  await page.fill(id("task-name"), name);
  for (const label of LABELS) {
    await page.check(`${id("task-label")}[value="${label}"]`);
  }
  await page.selectOption(id("task-preset"), "classification-fast");
  await page.selectOption(id("task-device"), "auto");
  await page.fill(id("task-max-minutes"), "0.5");
  if (!(await page.locator(id("task-advanced-panel")).evaluate((d) => d.open))) {
    await page.click(id("task-advanced"));
  }
  // The image size starts at the preset's.
  assert.equal(await page.inputValue(id("task-image-size")), "224");
  await page.fill(id("task-image-size"), "64");
  await page.fill(id("task-max-epochs"), "2");
}

/** A PNG for "Try it": a circle of the shapes demo when DATA_DIR is known, else one drawn here. */
async function tryImage() {
  if (DATA_DIR) {
    const circle = join(DATA_DIR, "templates", `instance-${made.instance}`, "circle", "circle-000.png");
    if (await access(circle).then(() => true, () => false)) return circle;
  }
  return writeFileIn(RESULTS, `try-${RUN}.png`, picture(96, 96, 7));
}

// ---------------------------------------------------------------------------------------

step("a: admin creates the shapes demo from the instances page", async () => {
  await page.goto(`${BASE_URL}/login`);
  await page.fill(id("login-username"), "admin");
  await page.fill(id("login-password"), ADMIN_PASSWORD);
  await page.click(id("login-submit"));
  await page.waitForURL((url) => url.pathname === "/");
  await page.click(id("create-demo"));
  await page.waitForURL((url) => /^\/instances\/\d+$/.test(url.pathname), { timeout: 60_000 });
  made.instance = Number(new URL(page.url()).pathname.split("/")[2]);
  await page.locator(id("instance-name")).waitFor();
  assert.match(await text(id("instance-name")), /^shapes-demo/);
  assert.equal(await page.getAttribute(id("instance-type"), "data-type"), "image_classification");
  const row = page.locator(`${id("dataset-row")}[data-name="shapes"]`);
  await row.waitFor();
  assert.equal(await row.locator(id("dataset-total")).textContent(), "120 images");
  assert.equal(await text(id("tasks-empty")), "No training tasks yet.");
  await page.locator(id("models-empty")).waitFor();
});

step("b: the task form offers the dataset's labels and refuses bad fields by name", async () => {
  await page.click(id("new-task"));
  await page.locator(id("task-form")).waitFor();
  // Labels come from the chosen dataset's counts; all three have enough images.
  await page.locator(id("task-label")).nth(2).waitFor();
  const labels = await page.$$eval(id("task-label"), (inputs) => inputs.map((i) => [i.value, i.checked, i.disabled]));
  assert.deepEqual(labels, LABELS.map((l) => [l, true, false]));
  const counts = await page.$$eval(`${id("task-labels")} .chip-count`, (spans) => spans.map((s) => s.textContent.trim()));
  assert.deepEqual(counts, ["40", "40", "40"]);
  // The name rule is checked as it is typed.
  await page.fill(id("task-name"), "-bad");
  assert.match(await filled(id("task-name-error")), /^task name must start with/);
  // Local checks before anything is sent.
  await page.fill(id("task-name"), TASK);
  await page.uncheck(`${id("task-label")}[value="square"]`);
  await page.uncheck(`${id("task-label")}[value="triangle"]`);
  await page.fill(id("task-max-minutes"), "90");
  await page.click(id("task-submit"));
  assert.match(await filled(id("task-labels-error")), /at least two labels/);
  assert.match(await filled(id("task-max-minutes-error")), /at most 60/);
  assert.equal(await page.getAttribute(id("task-max-minutes"), "aria-invalid"), "true");
  assert.equal(await page.locator(id("task-row")).count(), 0, "nothing was queued");
});

step("c: a training task is queued from the form and its page opens", async () => {
  await fillTaskForm(TASK);
  await page.click(id("task-submit"));
  await page.waitForURL((url) => /^\/tasks\/\d+$/.test(url.pathname));
  made.task = Number(new URL(page.url()).pathname.split("/")[2]);
  await page.locator(id("task-page")).waitFor();
  assert.equal(await text(id("task-title")), TASK);
  assert.equal(await text(id("task-id")), String(made.task));
  assert.equal(await text(id("task-labels-shown")), LABELS.join(", "));
  const task = (await apiGet(`/api/tasks/${made.task}`)).json;
  assert.equal(task.image_size, 64);
  assert.equal(task.max_epochs, 2);
  assert.equal(task.max_minutes, 0.5);
  assert.deepEqual(task.labels, LABELS);
  assert.equal(task.device, "auto");
});

step(
  "d: the task page streams curves, progress and log until the task succeeds",
  async () => {
    // Queued or running: a Stop button is offered (read in one go, as the status moves on).
    const early = await page.evaluate(
      ([status, stop]) => [document.querySelector(status)?.dataset.status, document.querySelector(stop) !== null],
      [id("task-status"), id("task-stop")],
    );
    if (early[0] === "queued" || early[0] === "running") assert.ok(early[1], `Stop offered while ${early[0]}`);
    await page.locator(`${id("loss-chart")} ${id("chart-point")}`).first().waitFor({ timeout: TRAINING_MS });
    await page.locator(`${id("accuracy-chart")} ${id("chart-point")}`).first().waitFor();
    await page
      .locator(`${id("task-status")}[data-status="succeeded"]`)
      .waitFor({ timeout: TRAINING_MS });
    await page.locator(id("task-model-link")).waitFor();
    assert.equal(await page.locator(id("task-stop")).count(), 0, "no Stop once finished");
    assert.equal(await page.getAttribute(id("task-live"), "data-state"), "done");
    assert.equal(await page.$eval(id("task-progress"), (p) => p.value), 1);
    // Both charts have a train and a validation line, with axes and legends.
    for (const chart of ["loss-chart", "accuracy-chart"]) {
      assert.ok(Number(await page.getAttribute(id(chart), "data-points")) >= 2, `${chart} has points`);
      assert.equal(await page.locator(`${id(chart)} ${id("chart-legend-item")}`).count(), 2);
      assert.equal(await page.locator(`${id(chart)} polyline`).count(), 2);
      assert.match(await text(`${id(chart)} .axis-label`), /loss|accuracy|Time/);
    }
    assert.ok(Number(await page.getAttribute(id("task-log"), "data-lines")) > 0, "log lines arrived");
    assert.notEqual(await text(id("task-started")), "not yet");
    assert.notEqual(await text(id("task-duration")), "–");
    assert.notEqual(await text(id("task-worker")), "–");
    assert.ok(Number(await text(id("task-attempts"))) >= 1);
    assert.doesNotMatch(await text(id("task-device")), /requested/);
    // The page agrees with the API.
    const task = (await apiGet(`/api/tasks/${made.task}`)).json;
    assert.equal(task.status, "succeeded");
    made.model = task.model_id;
    assert.ok(made.model, "the task made a model");
    await shoot("training-task");
  },
  TRAINING_MS * 2 + 60_000,
);

step("e: the model page shows metrics, per-class figures and the confusion matrix", async () => {
  await page.click(id("task-model-link"));
  await page.waitForURL((url) => url.pathname === `/models/${made.model}`);
  await page.locator(id("model-page")).waitFor();
  const model = (await apiGet(`/api/models/${made.model}`)).json;
  assert.equal(await text(id("model-title")), `Model v${model.version}`);
  assert.equal(await text(id("model-labels")), model.labels.join(", "));
  // The metrics table, as the API has them.
  const keys = await page.$$eval(`${id("metrics-table")} ${id("metric")}`, (rows) => rows.map((r) => r.dataset.key));
  for (const key of ["accuracy", "precision", "recall", "f1", "loss", "model_size", "validation_images", "train_images"]) {
    assert.ok(keys.includes(key), `metrics table has ${key}`);
  }
  assert.equal(await text(id("metric-accuracy")), `${(model.metrics.accuracy * 100).toFixed(1)}%`);
  assert.equal(await text(id("metric-validation_images")), String(model.metrics.validation_images));
  assert.match(await text(id("metric-model_size")), /^\d+(\.\d)? (B|KB|MB)$/);
  assert.equal(await page.locator(`${id("per-class-table")} ${id("class-row")}`).count(), 3);
  // 3×3, rows truth and columns predicted, over the 12 validation images.
  const matrix = page.locator(id("confusion-matrix"));
  assert.equal(await matrix.getAttribute("data-size"), "3");
  const cells = await page.$$eval(id("cm-cell"), (tds) =>
    tds.map((td) => ({ truth: td.dataset.truth, predicted: td.dataset.predicted, count: Number(td.dataset.count) })),
  );
  assert.equal(cells.length, 9);
  const sum = cells.reduce((s, c) => s + c.count, 0);
  assert.equal(sum, 12);
  assert.equal(sum, model.metrics.validation_images);
  for (const [i, c] of cells.entries()) {
    assert.equal(c.count, model.metrics.confusion_matrix[Math.floor(i / 3)][i % 3]);
    assert.equal(c.truth, model.labels[Math.floor(i / 3)]);
    assert.equal(c.predicted, model.labels[i % 3]);
  }
  // An off-diagonal cell lists its images, when the model made a mistake.
  const wrong = cells.find((c) => c.truth !== c.predicted && c.count > 0);
  if (wrong) {
    await page.click(`${id("cm-cell")}[data-truth="${wrong.truth}"][data-predicted="${wrong.predicted}"] ${id("cm-cell-button")}`);
    const panel = page.locator(`${id("misclassified-panel")}[data-truth="${wrong.truth}"][data-predicted="${wrong.predicted}"]`);
    await panel.waitFor();
    const expected = model.metrics.misclassified.filter((m) => m.truth === wrong.truth && m.predicted === wrong.predicted);
    assert.equal(await panel.locator(id("misclassified")).count(), expected.length);
    if (expected.length > 0) {
      assert.match(await text(id("misclassified-confidence")), /^\d+\.\d% confident$/);
      await page.waitForFunction(
        (sel) => [...document.querySelectorAll(`${sel} img`)].every((img) => img.complete && img.naturalWidth > 0),
        id("misclassified-list"),
      );
    }
  } else {
    assert.equal(await page.locator(id("cm-cell-button")).count(), 0, "nothing to drill into");
  }
  await shoot("training-model");
});

step("e2: the model page deploys the version and shows its token once", async () => {
  // Still on the model page.
  const section = page.locator(id("model-services"));
  await section.locator(id("service-empty")).waitFor();
  const version = (await apiGet(`/api/models/${made.model}`)).json.version;
  await page.click(id("deploy-open"));
  // The rules are checked as they are typed.
  await page.fill(id("service-name"), "bad name");
  assert.match(await filled(id("service-name-error")), /^service name may contain only/);
  await page.fill(id("service-replicas"), "17");
  assert.match(await filled(id("service-replicas-error")), /replicas is 1 to 16/);
  await page.fill(id("service-replicas"), "1");
  await page.fill(id("service-name"), SERVICE);
  await page.click(id("service-submit"));
  await page.locator(id("service-token")).waitFor();
  made.token = await text(id("service-token"));
  assert.ok(made.token.length >= 16, `token ${made.token}`);
  // The form closes once the service is made.
  await page.locator(id("service-form")).waitFor({ state: "detached" });
  assert.equal(await text(id("service-endpoint-url")), `${BASE_URL}/api/predict/${SERVICE}`);
  const curl = await text(id("service-curl"));
  assert.equal(
    curl,
    `curl -H "Authorization: ${made.token}" -H 'content-type: application/json' ` +
      `-d '{"dataArray":[{"name":"image","type":"stream","body":"'$(base64 -w0 image.jpg)'"}]}' ` +
      `${BASE_URL}/api/predict/${SERVICE}`,
  );
  const row = section.locator(`${id("service-row")}[data-name="${SERVICE}"]`);
  await row.waitFor();
  assert.equal(await row.locator(id("service-endpoint")).getAttribute("data-endpoint"), `/api/predict/${SERVICE}`);
  assert.equal(await row.locator(id("service-model-link")).textContent(), `model v${version}`);
  // The API agrees, and never shows the token again.
  const svc = (await apiGet(`/api/services/${SERVICE}`)).json;
  assert.equal(svc.kind, "predict");
  assert.equal(svc.model_id, made.model);
  assert.equal(svc.replicas, 1);
  assert.equal(svc.token, undefined);
  await shoot("deploy-model");
});

step(
  "e3: the service page waits for the model, answers Try it and changes the replicas",
  async () => {
    await page.click(id("service-page-link"));
    await page.waitForURL((url) => url.pathname === `/services/${SERVICE}`);
    await page.locator(id("service-page")).waitFor();
    assert.equal(await text(id("service-title")), SERVICE);
    assert.equal(await text(id("service-kind")), "predict");
    assert.equal(await page.getAttribute(id("service-model-link"), "href"), `/models/${made.model}`);
    assert.equal(await text(id("service-replicas-shown")), "1");
    // The page asks again every 2 s while the model loads.
    await page.locator(`${id("service-status")}[data-status="running"]`).waitFor({ timeout: LOADING_MS });
    // The token is not shown again: the curl line has a placeholder.
    const curl = await text(id("service-curl"));
    assert.ok(curl.includes(`"Authorization: <token>"`), curl);
    assert.ok(!curl.includes(made.token), "no token on the service page");
    // The served version is the one selected to switch from.
    await page.locator(`${id("switch-model")} option[value="${made.model}"]`).waitFor({ state: "attached" });
    assert.equal(await page.inputValue(id("switch-model")), String(made.model));

    // Try it: a wrong token is refused by the endpoint, the right one answers.
    await page.setInputFiles(id("try-file"), await tryImage());
    await page.locator(id("try-preview")).waitFor();
    await page.fill(id("try-token"), "wrong-token");
    await page.click(id("try-submit"));
    await page.locator(`${id("predict-error")}[data-code="401"]`).waitFor();
    await page.fill(id("try-token"), made.token);
    await page.click(id("try-submit"));
    await page.locator(id("predict-labels")).waitFor();
    const predictions = await page.$$eval(id("predict-label"), (lis) =>
      lis.map((li) => ({ label: li.dataset.label, conf: Number(li.dataset.conf) })),
    );
    assert.equal(predictions.length, 3);
    assert.deepEqual(predictions.map((p) => p.label).sort(), LABELS);
    for (let i = 1; i < predictions.length; i++) {
      assert.ok(predictions[i - 1].conf >= predictions[i].conf, "highest confidence first");
    }
    const total = predictions.reduce((s, p) => s + p.conf, 0);
    assert.ok(Math.abs(total - 1) < 0.01, `confidences sum to ${total}`);
    const answer = JSON.parse(await text(id("predict-json")));
    assert.equal(answer.success, true);
    assert.equal(answer.result.output[0].type, "cv_common");
    assert.deepEqual(answer.result.meta, { height: 96, width: 96 });
    assert.equal(await text(id("predict-meta")), "Image of 96 × 96 px");

    // More replicas: the service keeps answering while they start.
    await page.fill(id("switch-replicas"), "2");
    await page.click(id("switch-submit"));
    assert.equal(await filled(id("switch-done")), "Saved.");
    assert.equal(await text(id("service-replicas-shown")), "2");
    assert.equal((await apiGet(`/api/services/${SERVICE}`)).json.replicas, 2);
    await shoot("deploy-service");
  },
  LOADING_MS + 60_000,
);

step("e4: the instance lists the service, the deployed model cannot be deleted, Undeploy removes it", async () => {
  await page.goto(`${BASE_URL}/instances/${made.instance}`);
  const row = page.locator(`${id("instance-services")} ${id("service-row")}[data-name="${SERVICE}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute("data-status"), "running");
  assert.equal(await row.locator(id("service-link")).getAttribute("href"), `/services/${SERVICE}`);
  // Deleting the version it serves is refused, with the server's reason.
  await page.goto(`${BASE_URL}/models/${made.model}`);
  await page.locator(`${id("model-services")} ${id("service-row")}[data-name="${SERVICE}"]`).waitFor();
  await page.click(id("delete-model"));
  assert.match(await filled(id("model-action-error")), new RegExp(`deployed as ${SERVICE}`));
  assert.equal((await apiGet(`/api/models/${made.model}`)).status, 200);
  // Undeploy on the service page returns to the instance.
  await page.goto(`${BASE_URL}/services/${SERVICE}`);
  await page.locator(id("service-title")).waitFor();
  await page.click(id("service-undeploy"));
  await page.waitForURL((url) => url.pathname === `/instances/${made.instance}`);
  await page.locator(`${id("instance-services")} ${id("service-empty")}`).waitFor();
  assert.equal((await apiGet(`/api/services/${SERVICE}`)).status, 404);
});

step("f: the instance lists the task and the model; a second task of that name is refused", async () => {
  await page.goto(`${BASE_URL}/instances/${made.instance}`);
  const row = page.locator(`${id("task-row")}[data-task-id="${made.task}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute("data-status"), "succeeded");
  const modelRow = page.locator(`${id("model-row")}[data-model-id="${made.model}"]`);
  await modelRow.waitFor();
  assert.match(await modelRow.locator(id("model-accuracy")).textContent(), /%$/);
  // The server's refusal is shown by the field it names.
  await page.click(id("new-task"));
  await page.locator(`${id("task-label")}[value="circle"]`).waitFor();
  await fillTaskForm(TASK);
  // Incremental training can start from the model just made.
  await page.locator(`${id("task-base-model")} option[value="${made.model}"]`).waitFor({ state: "attached" });
  const options = await page.$$eval(`${id("task-base-model")} option`, (os) => os.map((o) => o.value));
  assert.ok(options.includes(String(made.model)), "the model is offered as a starting point");
  await page.click(id("task-submit"));
  assert.match(await filled(id("task-name-error")), /already has a task named/);
  assert.equal(await page.locator(id("task-row")).count(), 1, "nothing was queued");
  await page.click(id("task-cancel"));
  await shoot("training-instance");
});

step("g: deleting the model returns to the instance, which no longer lists it", async () => {
  await page.goto(`${BASE_URL}/models/${made.model}`);
  await page.click(id("delete-model"));
  await page.waitForURL((url) => url.pathname === `/instances/${made.instance}`);
  await page.locator(id("models-empty")).waitFor();
  assert.equal((await apiGet(`/api/models/${made.model}`)).status, 404);
});
