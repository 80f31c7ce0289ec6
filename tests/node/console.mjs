// Drives the operator console in Debian's Chromium (headless) with playwright-core:
// waits for a block decision in the live table, runs the try box, saves a screenshot.
// Usage: node console.mjs URL SCREENSHOT [USER PASSWORD]; TRY_TEXT in the environment.
// Prints one JSON line with what the page showed.
import { chromium } from "playwright-core";

const [url, shot, user, pass] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const context = await browser.newContext(
    user ? { httpCredentials: { username: user, password: pass } } : {},
  );
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  const blocked = '#decisions tbody tr[data-decision="block"]';
  await page.waitForSelector(blocked, { timeout: 30000 });
  const blockRules = await page.textContent(`${blocked} td.rules`);
  const tableText = await page.textContent("#decisions");
  await page.waitForSelector('#counts [data-dimension="rule"] td', { timeout: 30000 });
  const countsText = await page.textContent("#counts");
  await page.waitForSelector("#config tbody tr", { timeout: 30000 });
  const configText = await page.textContent("#config");
  await page.fill("#try-text", process.env.TRY_TEXT || "");
  await page.click("#try-run");
  await page.waitForSelector("#try-findings tr[data-rule]", { timeout: 30000 });
  const found = await page.$$eval("#try-findings tr[data-rule]", (rs) => rs.map((r) => r.dataset.rule));
  const decision = await page.textContent("#try-decision span");
  const redacted = await page.$eval("#try-result pre", (e) => e.textContent).catch(() => null);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ blockRules, tableText, countsText, configText, found, decision, redacted, errors }));
} finally {
  await browser.close();
}
