// Recommendation recall in the browser (issue #7), in headless Chromium against a running
// server:
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_PASSWORD=... npm test
//
// Creates a recommendation_recall instance through the UI, builds user_item/item_item from a
// behaviour log (watching the job's progress), uploads every table through the file input
// (preview first, then the row counts), sees bad files refused by line and field, adds
// strategies and a filter, checks the test console's exact items, deploys a service and
// calls its endpoint with the token read from the page, and sees a deleted strategy change
// the answer. Leaves docs/screenshots/recall{,-rules,-console,-services}-{desktop,phone}.png.
// The expected items are worked out from the fixture as in tests/api/recall.rs. Steps run in order and share one
// browser context; a failing step leaves a screenshot in end2end/test-results/.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { SCREENSHOTS, RESULTS, BASE_URL, ADMIN_PASSWORD, DESKTOP, PHONE, LAUNCH } from "./env.mjs";

const RUN = Date.now().toString(36);
const INSTANCE = `rec_${RUN}`;
const SERVICE = `home-${RUN}`;

// The fixture of tests/api/recall.rs.
const TABLES = {
  user_item: "user_id,item_ids\nu1,\"h1,h2\"\nu2,x,y,h1\nu3,x\n",
  item_item: "h1\ta:0.9,h2:0.8,b:0.5\nh2\tb:0.6 c:0.1\n",
  user_topic: "u1,sports:1\n",
  topic_item: "sports,c:0.9,d:0.8\n",
  custom: "u1,e:0.2,a:0.9\n",
};
const LOG = [
  "user_id,item_id,active_type,active_date",
  "u1,h1,0,2024-01-01 10:00:00",
  "u1,h2,1,2024-01-02 11:00:00",
  "u2,h1,2,2024-01-03 12:00:00",
  "u2,x,0,2024-01-04 13:00:00",
  "u3,x,0,2024-01-05 14:00:00",
  "u3,y,1,2024-01-06 15:00:00",
  "",
].join("\n");

let browser;
let context;
let page;
const pageErrors = [];
const made = {};

const id = (testid) => `[data-testid="${testid}"]`;
const card = (table) => `${id("table-card")}[data-table="${table}"]`;

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
      const file = join(RESULTS, `recall-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
      await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
      throw err;
    }
  });
}

async function text(selector) {
  return (await page.locator(selector).first().textContent()).trim();
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

async function rows(table) {
  return Number(await page.getAttribute(`${card(table)} ${id("table-rows")}`, "data-rows"));
}

async function waitRows(table, n) {
  await page.locator(`${card(table)} ${id("table-rows")}[data-rows="${n}"]`).waitFor();
}

/** Chooses `content` as the file of the upload form (table and mode first). */
async function chooseTableFile(table, content, { mode = "replace", name = `${table}.csv` } = {}) {
  await page.selectOption(id("upload-table"), table);
  await page.selectOption(id("upload-mode"), mode);
  await page.setInputFiles(id("upload-file"), {
    name,
    mimeType: "text/csv",
    buffer: Buffer.from(content),
  });
  await page.locator(id("upload-preview")).waitFor();
}

async function previewRows() {
  return page.$$eval(`${id("upload-preview-row")}`, (trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.firstChild?.textContent?.trim() ?? "")),
  );
}

/** Uploads a table through the form and waits for the server's answer. */
async function upload(table, content, opts = {}) {
  await chooseTableFile(table, content, opts);
  await page.click(id("upload-submit"));
  await page.locator(`${id("upload-result")}, ${id("upload-error")}`).first().waitFor();
}

async function consoleItems() {
  return page.$$eval(id("console-item"), (lis) => lis.map((li) => [li.dataset.item, li.dataset.retrieve]));
}

async function waitConsole(expected) {
  return eventually(consoleItems, (got) => assert.deepEqual(got, expected));
}

async function runConsole(user, size) {
  await page.fill(id("console-user"), user);
  await page.fill(id("console-size"), String(size));
  await page.click(id("console-send"));
}

async function recallEndpoint(name, token, user, size = 10) {
  const res = await fetch(`${BASE_URL}/api/recall/${name}?user_id=${encodeURIComponent(user)}&size=${size}`, {
    headers: { Authorization: token },
  });
  return { status: res.status, json: await res.json() };
}

const pairs = (json) => json.items.map((i) => [i.item_id, i.retrieve_id]);

step("a: admin creates a recommendation_recall instance and sees its empty tables", async () => {
  await page.goto(`${BASE_URL}/login`);
  await page.fill(id("login-username"), "admin");
  await page.fill(id("login-password"), ADMIN_PASSWORD);
  await page.click(id("login-submit"));
  await page.waitForURL((url) => url.pathname === "/");
  await page.click(id("new-instance"));
  await page.selectOption(id("create-type"), "recommendation_recall");
  await page.fill(id("create-name"), INSTANCE);
  await page.click(id("create-submit"));
  const row = page.locator(`${id("instance-row")}[data-name="${INSTANCE}"]`);
  await row.waitFor();
  made.instance = Number(await row.getAttribute("data-instance-id"));
  await row.locator(id("row-name")).click();
  await page.locator(id("recall-workspace")).waitFor();
  assert.equal(await page.locator(id("datasets-section")).count(), 0, "no image datasets here");
  await page.locator(card("filter_item")).waitFor();
  assert.equal(await page.locator(id("table-card")).count(), 7);
  for (const t of ["user_item", "item_item", "user_topic", "topic_item", "custom", "filter_user_item", "filter_item"]) {
    assert.equal(await rows(t), 0, t);
  }
  await page.locator(id("strategy-empty")).waitFor();
  await page.locator(id("filter-empty")).waitFor();
  await page.locator(id("service-empty")).waitFor();
});

step("b: a behaviour log builds user_item and item_item, with the job's progress shown", async () => {
  await page.setInputFiles(id("log-file"), { name: "log.csv", mimeType: "text/csv", buffer: Buffer.from(LOG) });
  await page.click(id("log-submit"));
  await page.locator(id("log-progress")).waitFor();
  await page.locator(`${id("log-job")}[data-state="succeeded"]`).waitFor();
  assert.equal(await text(id("log-percent")), "100%");
  assert.equal(await page.$eval(id("log-progress"), (p) => p.value), 1);
  assert.equal(await text(id("stat-interactions")), "6");
  assert.equal(await text(id("stat-users")), "3");
  assert.equal(await text(id("stat-items")), "4");
  const itemItem = Number(await text(id("stat-item-item")));
  assert.ok(itemItem > 0, "CF found similar items");
  // The tables refresh by themselves.
  await waitRows("user_item", 3);
  await waitRows("item_item", itemItem);

  // A bad log is refused by line and field; nothing starts.
  await page.setInputFiles(id("log-file"), {
    name: "bad.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("u1,h1,0,2024-01-01\nu2,h2,7,2024-01-02\n"),
  });
  await page.click(id("log-submit"));
  await page.locator(id("log-error")).waitFor();
  assert.match(await text(id("log-error")), /^Line 2, active_type: "7" is not 0/);
  assert.equal(await rows("user_item"), 3);
});

step("c: each table is previewed before the upload and counted after it", async () => {
  // The preview shows the rows as they will be stored, the header left out.
  await chooseTableFile("user_item", TABLES.user_item);
  assert.deepEqual(await previewRows(), [
    ["2", "u1", "h1:1,h2:1"],
    ["3", "u2", "x:1,y:1,h1:1"],
    ["4", "u3", "x:1"],
  ]);
  assert.equal(await page.locator(id("upload-preview-error")).count(), 0);
  assert.equal(await rows("user_item"), 3, "nothing is sent before the click");
  await page.click(id("upload-submit"));
  await page.locator(id("upload-result")).waitFor();
  assert.equal(await text(id("upload-result")), "Imported 3 rows (replace); user_item now has 3 rows.");
  await page.locator(id("upload-preview")).waitFor({ state: "detached" });

  const expected = { user_item: 3, item_item: 2, user_topic: 1, topic_item: 1, custom: 1 };
  for (const table of ["item_item", "user_topic", "topic_item", "custom"]) {
    await chooseTableFile(table, TABLES[table]);
    const preview = await previewRows();
    assert.equal(preview.length, expected[table], `${table} preview`);
    await page.click(id("upload-submit"));
    await page.locator(id("upload-result")).waitFor();
    assert.match(await text(id("upload-result")), new RegExp(`${table} now has ${expected[table]} rows?\\.$`));
  }
  for (const [table, n] of Object.entries(expected)) await waitRows(table, n);
  // The card previews the stored rows.
  const cardRows = await page.$$eval(`${card("item_item")} ${id("table-preview-row")}`, (trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim())),
  );
  assert.deepEqual(cardRows, [
    ["h1", "a:0.9,h2:0.8,b:0.5"],
    ["h2", "b:0.6,c:0.1"],
  ]);
  // The "Upload…" button of a card picks that table.
  await page.click(`${card("filter_item")} ${id("table-upload")}`);
  assert.equal(await page.$eval(id("upload-table"), (s) => s.value), "filter_item");
});

step("d: bad files are refused by line and field, and the table stays as it was", async () => {
  // A bad line among the first rows is flagged in the preview; nothing can be sent.
  await chooseTableFile("item_item", "h1,a:1\nh2,b:1\nh3,c:high\n");
  const preview = await previewRows();
  assert.equal(preview.length, 3);
  assert.equal(await page.locator(`${id("upload-preview-row")}.bad`).count(), 1);
  assert.match(await text(id("upload-preview-error")), /line 3, similar_item_ids: weight "high" of "c" is not a number/);
  assert.ok(await page.isDisabled(id("upload-submit")));

  // A bad line past the preview: the server refuses the whole file and says where.
  const lines = ["h1,a:1", "h2,b:1", "h3,b:1", "h4,b:1", "h5,b:1", "h6,b:1", "h7,b:1", "h8,c:high"];
  await chooseTableFile("item_item", lines.join("\n") + "\n");
  assert.equal(await page.locator(id("upload-preview-error")).count(), 0);
  await page.click(id("upload-submit"));
  await page.locator(id("upload-error")).waitFor();
  assert.match(await text(id("upload-error")), /^Line 8, similar_item_ids: weight "high" of "c" is not a number/);
  assert.equal(await rows("item_item"), 2);
  await page.reload();
  await waitRows("item_item", 2);
  await waitRows("user_item", 3);
});

step("e: strategies and a filter are added, with the name rule checked as typed", async () => {
  await page.fill(id("strategy-name"), "9bad");
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim().length > 0, id("strategy-name-error"));
  assert.equal(await text(id("strategy-name-error")), "strategy name must start with an ASCII letter");
  await page.click(id("strategy-submit"));
  assert.equal(await page.locator(id("strategy-row")).count(), 0, "an invalid name is not sent");

  for (const [name, type, count] of [
    ["cf", "collaborative_filtering", 2],
    ["topic", "semantic", 10],
    ["mine", "custom", 10],
  ]) {
    await page.fill(id("strategy-name"), name);
    await page.selectOption(id("strategy-type-select"), type);
    await page.fill(id("strategy-count-input"), String(count));
    await page.click(id("strategy-submit"));
    await page.locator(`${id("strategy-row")}[data-name="${name}"]`).waitFor();
  }
  const list = await page.$$eval(id("strategy-row"), (lis) =>
    lis.map((li) => [
      li.dataset.name,
      li.querySelector('[data-testid="strategy-type"]').dataset.type,
      li.querySelector('[data-testid="strategy-count"]').textContent.trim(),
    ]),
  );
  assert.deepEqual(list, [
    ["cf", "collaborative_filtering", "top 2"],
    ["topic", "semantic", "top 10"],
    ["mine", "custom", "top 10"],
  ]);
  // A duplicate name: the server's refusal is shown by the name field.
  await page.fill(id("strategy-name"), "cf");
  await page.click(id("strategy-submit"));
  await page.waitForFunction((sel) => /exists/.test(document.querySelector(sel)?.textContent), id("strategy-name-error"));
  await page.fill(id("strategy-name"), "");

  await page.fill(id("filter-name"), "bad name");
  assert.match(await text(id("filter-name-error")), /^filter name may contain only/);
  await page.fill(id("filter-name"), "banned");
  await page.selectOption(id("filter-type-select"), "item");
  await page.click(id("filter-submit"));
  await page.locator(`${id("filter-row")}[data-name="banned"] ${id("filter-type")}[data-type="item"]`).waitFor();
  // The filter's table, replaced then appended to.
  await upload("filter_item", "item_id\nz1\n");
  await waitRows("filter_item", 1);
  await upload("filter_item", "e\n", { mode: "append" });
  assert.equal(await text(id("upload-result")), "Imported 1 row (append); filter_item now has 2 rows.");
  await waitRows("filter_item", 2);
});

// cf (count 2): b = 0.5 + 0.6, a = 0.9 (h1, h2 are history); topic: c, d; mine: a (taken),
// e (filtered out); then popular items not in the history.
const U1 = [
  ["b", "cf"],
  ["a", "cf"],
  ["c", "topic"],
  ["d", "topic"],
  ["x", "popular"],
  ["y", "popular"],
];

step("f: the test console shows the items with their strategy, and the JSON", async () => {
  // The section links jump within the page.
  await page.click('.jump a[href="#recall-console"]');
  await page.waitForFunction(() => {
    const r = document.querySelector("#recall-console").getBoundingClientRect();
    // In view (the page may be too short to bring it to the very top).
    return window.scrollY > 0 && r.top >= 0 && r.top < window.innerHeight / 2;
  });
  await page.locator(id("recall-workspace")).waitFor();
  await runConsole("u1", 11);
  assert.equal(await text(id("console-size-error")), "count is 1 to 10");
  await page.fill(id("console-size"), "10");
  await page.click(id("console-send"));
  await waitConsole(U1);
  const json = JSON.parse(await text(id("console-json")));
  assert.equal(json.code, 200);
  assert.equal(json.msg, "success");
  assert.equal(json.size, U1.length);
  assert.deepEqual(pairs(json), U1);
  assert.deepEqual(json.errors, []);
  assert.deepEqual(Object.keys(json), ["code", "msg", "request_id", "size", "items", "errors"]);

  await runConsole("u1", 3);
  await waitConsole(U1.slice(0, 3));

  // An unknown user gets popular items, not an error.
  await runConsole("stranger", 2);
  await waitConsole([
    ["h1", "popular"],
    ["x", "popular"],
  ]);
  assert.equal(await page.locator(id("console-error")).count(), 0);
  await runConsole("u1", 10);
  await waitConsole(U1);
});

step("g: a deployed service answers with the token shown once", async () => {
  await page.fill(id("service-name"), "bad name");
  assert.match(await text(id("service-name-error")), /^service name may contain only/);
  await page.fill(id("service-name"), SERVICE);
  await page.click(id("service-submit"));
  await page.locator(id("service-token")).waitFor();
  const token = await text(id("service-token"));
  assert.ok(token.length >= 16, `token ${token}`);
  const curl = await text(id("service-curl"));
  assert.ok(curl.includes(`Authorization: ${token}`), curl);
  assert.ok(curl.includes(`${BASE_URL}/api/recall/${SERVICE}?user_id=u1&size=10`), curl);
  const row = page.locator(`${id("service-row")}[data-name="${SERVICE}"]`);
  await row.waitFor();
  assert.equal(await row.locator(id("service-endpoint")).getAttribute("data-endpoint"), `/api/recall/${SERVICE}`);
  made.token = token;

  const res = await recallEndpoint(SERVICE, token, "u1");
  assert.equal(res.status, 200, JSON.stringify(res.json));
  assert.deepEqual(pairs(res.json), U1);
  const denied = await recallEndpoint(SERVICE, "wrong", "u1");
  assert.equal(denied.status, 401);

  await shoot("recall");
  await shoot("recall-rules", "strategies-section");
  await shoot("recall-console", "console-section");
  await shoot("recall-services", "services-section");
});

step("h: deleting a strategy changes the console and the service", async () => {
  await page.click(`${id("strategy-row")}[data-name="cf"] ${id("strategy-delete")}`);
  await page.locator(`${id("strategy-row")}[data-name="cf"]`).waitFor({ state: "detached" });
  // The console asks again by itself: without cf, a comes from mine.
  const without = [
    ["c", "topic"],
    ["d", "topic"],
    ["a", "mine"],
    ["x", "popular"],
    ["y", "popular"],
  ];
  await waitConsole(without);
  const res = await recallEndpoint(SERVICE, made.token, "u1");
  assert.deepEqual(pairs(res.json), without);

  // The token is not shown again after a reload; undeploying stops the endpoint.
  await page.reload();
  await page.locator(`${id("service-row")}[data-name="${SERVICE}"]`).waitFor();
  assert.equal(await page.locator(id("service-token")).count(), 0);
  await page.click(`${id("service-row")}[data-name="${SERVICE}"] ${id("service-delete")}`);
  await page.locator(id("service-empty")).waitFor();
  // Gone: refused like a wrong token, so service names cannot be probed.
  const gone = await recallEndpoint(SERVICE, made.token, "u1");
  assert.equal(gone.status, 401);
});

/**
 * Screenshots of the page at desktop and phone width, scrolled to `testid` (the top of the
 * page when absent). Viewport-sized: the whole page is too long to stay under 300 KB.
 */
async function shoot(name, testid) {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    await page.evaluate((sel) => {
      const el = sel && document.querySelector(sel);
      if (el) el.scrollIntoView({ block: "start" });
      else window.scrollTo(0, 0);
    }, testid ? id(testid) : null);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
    await page.waitForTimeout(150);
    const path = join(SCREENSHOTS, `${name}-${size}.png`);
    await page.screenshot({ path });
    const { size: bytes } = await stat(path);
    assert.ok(bytes < 300 * 1024, `${path} is ${bytes} bytes`);
  }
  await page.setViewportSize(DESKTOP);
}
