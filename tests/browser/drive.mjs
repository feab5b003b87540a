// drive.mjs - a page driven step by step, for tests/browser/test_console.py.
//
// Owns only its commands (launch.mjs starts the browser): opens the page given as
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
import { createInterface } from "node:readline";
import { openPage, run, say } from "./launch.mjs";

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
  const page = await openPage();
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

await run(main);
