// drive.mjs - a page driven step by step, for tests/browser/test_console.py.
//
// Owns only the browser: launches /usr/bin/chromium through playwright-core
// (which never downloads one) with a fresh profile, opens the page given as
// argv[2], accepts every confirm() dialog, then runs one JSON command per
// stdin line and answers one JSON line:
//   {"do": "fill", "sel": S, "value": V}       -> {"ok": true}
//   {"do": "check", "sel": S}                  -> {"ok": true}
//   {"do": "click", "sel": S}                  -> {"ok": true}
//   {"do": "text", "sel": S}                   -> {"text": [...]} (all matches)
//   {"do": "wait", "sel": S, "has": T}         -> {"text": [...]} once an
//                                                 element of S contains T
//                                                 (up to 15 s)
//   {"do": "quit"}
// Errors are answered as {"error": "..."}; the Python side judges.
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

async function texts(page, sel) {
  return page.$$eval(sel, (els) => els.map((e) => e.textContent));
}

async function step(page, c) {
  switch (c.do) {
    case "fill":
      await page.fill(c.sel, c.value, { timeout: 5000 });
      return { ok: true };
    case "check":
      await page.check(c.sel, { timeout: 5000 });
      return { ok: true };
    case "click":
      await page.click(c.sel, { timeout: 5000 });
      return { ok: true };
    case "text":
      return { text: await texts(page, c.sel) };
    case "wait":
      await page.waitForFunction(
        ([sel, has]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(has)),
        [c.sel, c.has], { timeout: 15000, polling: 100 });
      return { text: await texts(page, c.sel) };
    default:
      return { error: `unknown command ${c.do}` };
  }
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
  page.on("dialog", (d) => d.accept());
  await page.goto(process.argv[2]);
  say({ ready: true });
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const c = JSON.parse(line);
    if (c.do === "quit") break;
    try {
      say(await step(page, c));
    } catch (e) {
      say({ error: String(e && e.message || e) });
    }
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
