// Smoke test of the web app in headless Chromium against a running `autolearn serve`.
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_PASSWORD=... npm test
//
// The server must serve the built app (scripts/build-web.sh -> dist/). The tests run in
// order and share one browser context (one cookie jar), like one person using the app.
// Screenshots of the login page and the instance list, at desktop and phone width, go to
// docs/screenshots/; a failing step leaves a screenshot in end2end/test-results/.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
import { SCREENSHOTS, RESULTS } from "./env.mjs";

const BASE_URL = (process.env.BASE_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// A name no earlier run used, valid for every instance type.
const NAME = `smoke_${Date.now().toString(36)}`;

let browser;
let context;
let page;
const pageErrors = [];

const id = (testid) => `[data-testid="${testid}"]`;

before(async () => {
  assert.ok(ADMIN_PASSWORD, "set ADMIN_PASSWORD to the admin password of the server under test");
  await mkdir(SCREENSHOTS, { recursive: true });
  await mkdir(RESULTS, { recursive: true });
  // `launch` gives the browser a fresh temporary profile (user-data dir) and deletes it on
  // close; Playwright refuses a `--user-data-dir` argument here by design.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  context = await browser.newContext({ viewport: DESKTOP });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    // A Rust panic in the app is reported through console.error by the panic hook.
    if (msg.type() === "error" && /panicked/.test(msg.text())) pageErrors.push(msg.text());
  });
});

after(async () => {
  await browser?.close();
});

/** Runs one test body; on failure saves a screenshot of the page for the post-mortem. */
function step(name, body) {
  test(name, { timeout: 60_000 }, async () => {
    try {
      await body();
      assert.deepEqual(pageErrors, [], "the page threw or panicked");
    } catch (err) {
      const file = join(RESULTS, `${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
      await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
      throw err;
    }
  });
}

async function shoot(name) {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    // Let layout settle after the resize before capturing.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size}.png`), fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
}

/** Calls the API from the page, so with the page's session cookie. */
function apiFromPage(method, path, body) {
  return page.evaluate(
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

function row(name) {
  return page.locator(`${id("instance-row")}[data-name="${name}"]`);
}

step("a: the login page refuses a wrong password with a visible message", async () => {
  await page.goto(`${BASE_URL}/`);
  // Not logged in: the app sends us to the login page.
  await page.waitForURL((url) => url.pathname === "/login");
  await page.locator(id("login-form")).waitFor();
  await shoot("login");

  await page.fill(id("login-username"), "admin");
  await page.fill(id("login-password"), "definitely-not-the-password");
  await page.click(id("login-submit"));
  const error = page.locator(id("login-error"));
  await error.waitFor({ state: "visible" });
  const message = (await error.textContent()).trim();
  assert.ok(message.length > 0, "the error message is empty");
  assert.equal(new URL(page.url()).pathname, "/login");
  assert.equal(await page.locator(id("current-user")).count(), 0);
});

step("b: admin logs in and sees the instance list", async () => {
  await page.fill(id("login-password"), ADMIN_PASSWORD);
  await page.click(id("login-submit"));
  await page.waitForURL((url) => url.pathname === "/");
  await page.locator(id("instances-page")).waitFor();
  // Either the list or the empty state, never the loading text forever.
  await page.locator(`${id("instance-list")}, ${id("instances-empty")}`).first().waitFor();
  assert.equal((await page.locator(id("current-user")).textContent()).trim(), "admin");
  await page.locator(id("logout")).waitFor({ state: "visible" });
});

step("c: the create form states the name rule live, and the server refuses the name too", async () => {
  await page.click(id("new-instance"));
  await page.locator(id("create-form")).waitFor();
  await page.selectOption(id("create-type"), "image_classification");

  const rule = page.locator(id("name-rule"));
  assert.equal((await rule.textContent()).trim(), "", "no message before typing");

  const bad = "_bad name";
  await page.fill(id("create-name"), bad);
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent.trim().length > 0,
    id("name-rule"),
  );
  const shown = (await rule.textContent()).trim();
  assert.match(shown, /^instance name must start with/);
  assert.equal(await page.getAttribute(id("create-name"), "aria-invalid"), "true");

  // Submitting an invalid name sends nothing and keeps the message.
  await page.click(id("create-submit"));
  assert.equal((await rule.textContent()).trim(), shown);
  assert.equal(await row(bad).count(), 0);

  // The server applies the same rule and says the same thing.
  const res = await apiFromPage("POST", "/api/instances", {
    type: "image_classification",
    name: bad,
    description: "",
  });
  assert.equal(res.status, 400, res.text);
  assert.equal(res.json?.error?.code, "invalid_name");
  assert.equal(res.json?.error?.field, "name");
  assert.equal(res.json?.error?.message, shown);

  // The rule follows the type: `rec-1` is a fine image instance name, not a recall one.
  await page.fill(id("create-name"), "rec-1");
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent.trim() === "",
    id("name-rule"),
  );
  await page.selectOption(id("create-type"), "recommendation_recall");
  await page.waitForFunction(
    (sel) => /^recall instance name/.test(document.querySelector(sel)?.textContent.trim()),
    id("name-rule"),
  );
  await page.selectOption(id("create-type"), "image_classification");
});

step("d: a valid instance is created and shows in the list", async () => {
  await page.fill(id("create-name"), NAME);
  await page.fill(id("create-description"), "Made by the browser smoke test");
  await page.click(id("create-submit"));
  await row(NAME).waitFor();
  assert.equal(await page.locator(id("create-form")).count(), 0, "the form closes");
  assert.equal((await row(NAME).locator(id("row-type")).textContent()).trim(), "Image classification");
  assert.equal((await row(NAME).locator(id("row-images")).textContent()).trim(), "0 images");
  assert.match((await row(NAME).locator(id("row-created")).textContent()).trim(), /^\d{4}-\d\d-\d\d \d\d:\d\d$/);

  // A second instance with the same name: the server refuses and the form says why.
  await page.click(id("new-instance"));
  await page.fill(id("create-name"), NAME);
  await page.click(id("create-submit"));
  const error = page.locator(id("create-error"));
  await error.waitFor({ state: "visible" });
  assert.ok((await error.textContent()).trim().length > 0);
  await page.click(id("create-cancel"));
  assert.equal(await row(NAME).count(), 1);
});

step("e: after a reload the session and the instance are still there", async () => {
  await page.reload();
  await row(NAME).waitFor();
  assert.equal((await page.locator(id("current-user")).textContent()).trim(), "admin");
  await shoot("instances");

  // The instance page, also straight from the address bar (the server's SPA fallback).
  await row(NAME).locator(id("row-name")).click();
  await page.waitForURL((url) => /^\/instances\/\d+$/.test(url.pathname));
  await page.locator(id("instance-name")).waitFor();
  assert.equal((await page.locator(id("instance-name")).textContent()).trim(), NAME);
  await page.reload();
  await page.locator(id("instance-name")).waitFor();
  assert.equal((await page.locator(id("instance-name")).textContent()).trim(), NAME);
  assert.equal((await page.locator(id("instance-type")).textContent()).trim(), "Image classification");
});

step("f: logout ends the session", async () => {
  await page.click(id("logout"));
  await page.waitForURL((url) => url.pathname === "/login");
  await page.locator(id("login-form")).waitFor();
  assert.equal(await page.locator(id("current-user")).count(), 0);
  const me = await apiFromPage("GET", "/api/auth/me");
  assert.equal(me.status, 401, "the server still knows the session");
  // The app does not let us back in without logging in.
  await page.goto(`${BASE_URL}/`);
  await page.waitForURL((url) => url.pathname === "/login");
});

step("g: an instance can be deleted from its page", async () => {
  await page.fill(id("login-username"), "admin");
  await page.fill(id("login-password"), ADMIN_PASSWORD);
  await page.click(id("login-submit"));
  await row(NAME).locator(id("row-name")).click();
  await page.locator(id("instance-name")).waitFor();
  page.once("dialog", (dialog) => dialog.accept());
  await page.click(id("delete-instance"));
  await page.waitForURL((url) => url.pathname === "/");
  await page.locator(`${id("instance-list")}, ${id("instances-empty")}`).first().waitFor();
  assert.equal(await row(NAME).count(), 0);
});
