// run.mjs - drives Debian's chromium for tests/browser/test_browser.py.
//
// Owns only the browser: launches /usr/bin/chromium through playwright-core
// (which never downloads one) with a fresh profile, opens the page given as
// argv[2], then answers commands read from stdin, one per line:
//   wait N   -> waits (up to 30 s) until the page got N bodies on both
//               streams, then prints {"ws": [...], "sse": [...], ...}
//   quit     -> closes the browser and exits 0
// Errors are printed as {"error": "..."}; the Python side judges.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const profile = mkdtempSync(join(process.env.TMPDIR || tmpdir(), "fm-chromium-"));
let ctx = null;

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function main() {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
      "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  await page.goto(process.argv[2]);
  say({ ready: true });
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === "quit") break;
    if (cmd !== "wait") continue;
    const n = Number(arg);
    try {
      await page.waitForFunction(
        (k) => window.got.ws.length >= k && window.got.sse.length >= k, n,
        { timeout: 30000, polling: 100 });
    } catch (e) {
      // report what arrived; the test says what was missing
    }
    say(await page.evaluate(() => window.got));
  }
}

try {
  await main();
} catch (e) {
  say({ error: String(e && e.message || e) });
  process.exitCode = 1;
} finally {
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
