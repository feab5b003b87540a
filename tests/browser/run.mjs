// run.mjs - drives Debian's chromium for tests/browser/test_browser.py.
//
// Owns only its commands (launch.mjs starts the browser): opens the page
// given as argv[2], then answers commands read from stdin, one per line:
//   wait N   -> waits (up to 30 s) until the page got N bodies on both
//               streams, then prints {"ws": [...], "sse": [...], ...}
//   quit     -> closes the browser and exits 0
// Errors are printed as {"error": "..."}; the Python side judges.
import { createInterface } from "node:readline";
import { openPage, run, say } from "./launch.mjs";

async function main() {
  const page = await openPage();
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

await run(main);
