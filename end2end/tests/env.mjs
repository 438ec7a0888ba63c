// Settings every browser suite shares: where things go, which server, how Chromium starts.
// (Imported by the suites; it holds no tests itself.)
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, "..", "..");
export const RESULTS = join(here, "..", "test-results");
// Screenshots and browser figures are documentation: a test run leaves the tracked files
// alone and writes them under test-results/ unless E2E_WRITE_DOCS=1 asks for docs/.
export const DOCS = process.env.E2E_WRITE_DOCS === "1" ? join(ROOT, "docs") : join(RESULTS, "docs");
export const SCREENSHOTS = join(DOCS, "screenshots");

export const BASE_URL = (process.env.BASE_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
export const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
/** Headless flags that work on a machine without network access (see DESIGN.md). */
export const LAUNCH = {
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
};
