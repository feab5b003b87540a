// launch.mjs - the one way the browser tests start a browser: Debian's
// /usr/bin/chromium through playwright-core (which never downloads one),
// headless, in a fresh profile, without the background networking that
// keeps trying hosts this machine cannot reach.
//
// Owns the browser context and its profile directory; run.mjs and
// drive.mjs own what they do with the page.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const profile = mkdtempSync(join(process.env.TMPDIR || tmpdir(), "fm-chromium-"));
let ctx = null;

// A page of a new browser (one per process).
export async function openPage() {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
      "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  return ctx.pages()[0] || await ctx.newPage();
}

// Close the browser (if it started) and remove its profile.
export async function closeBrowser() {
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

// One JSON line on stdout: how both scripts answer.
export function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// Run main, report what it threw as {"error"}, always close the browser.
export async function run(main) {
  try {
    await main();
  } catch (e) {
    say({ error: String(e && e.message || e) });
    process.exitCode = 1;
  } finally {
    await closeBrowser();
  }
}
