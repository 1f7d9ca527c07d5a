// Drives Debian's headless Chromium through vigil's dashboard and prints what it saw as one
// JSON line on stdout; tests/dashboard.rs compares that with the API. Screenshots go to
// OUT_DIR. Usage: node dashboard.mjs BASE_URL OUT_DIR DEVICE_ID [TOKEN]
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, outDir, device, token] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "vigil-chromium-"));
// Flags Chromium needs on a machine without a network or a display.
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage"];  // and a fresh profile: launchPersistentContext(profile)

const result = { errors: [], requests_failed: [] };
const context = await chromium.launchPersistentContext(profile, {
  executablePath, args, headless: true, viewport: { width: 1440, height: 900 }, timeout: 60000,
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => { if (m.type() === "error") result.errors.push(m.text()); });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  page.on("requestfailed", (r) => result.requests_failed.push(r.url()));
  if (token) await page.addInitScript((t) => sessionStorage.setItem("vigil-token", t), token);
  const ready = (v) => page.waitForFunction((want) => document.body.dataset.ready === want, v, { timeout: 30000 });

  // Overview: the open anomalies' table, the timeline, the fleet cards.
  await page.goto(base + "/", { waitUntil: "load" });
  await ready("overview");
  result.overview = await page.evaluate(() => ({
    rows: [...document.querySelectorAll("#anomaly-table tbody tr[data-device]")].map((tr) => ({
      detector: tr.dataset.detector, device_id: tr.dataset.device, ts_ms: Number(tr.dataset.ts) })),
    timeline_episodes: document.querySelectorAll("#timeline rect.episode").length,
    cards: [...document.querySelectorAll("#fleet .card span")].map((s) => s.textContent),
    as_of: document.getElementById("asof").textContent,
  }));
  await page.screenshot({ path: join(outDir, "overview.png"), fullPage: true });

  // Every episode, filtered by severity (the server pages and filters).
  await page.selectOption("#f-state", "all");
  await page.waitForFunction(() => document.querySelector("#a-page").textContent.includes(" of "), null, { timeout: 30000 });
  result.all_episodes_page = await page.evaluate(() => document.querySelector("#a-page").textContent);

  // A device, opened by a click on its row (in the table of every episode).
  await page.click(`#anomaly-table tbody tr[data-device="${device}"]`);
  await ready("device:" + device);
  result.device = await page.evaluate(() => ({
    id: document.getElementById("d-id").textContent,
    charts: [...document.querySelectorAll("#d-charts .chart")].map((c) => ({
      title: c.dataset.chart, points: Number(c.dataset.points), bands: Number(c.dataset.bands),
      canvases: c.querySelectorAll("canvas").length })),
    episodes: document.querySelectorAll("#d-episodes tbody tr").length,
    features: document.querySelectorAll("#d-features tr").length,
  }));
  await page.screenshot({ path: join(outDir, "device.png"), fullPage: true });

  // Top devices by the default feature.
  await page.goto(base + "/#/top");
  await ready("top");
  result.top = await page.evaluate(() => ({
    feature: document.getElementById("top-feature").value,
    devices: [...document.querySelectorAll("#top-table tbody tr")].map((tr) => tr.dataset.device),
  }));
  await page.screenshot({ path: join(outDir, "top.png") });

  // Without the token (a new tab: session storage is per tab), the page asks for it.
  if (token) {
    const bare = await context.newPage();
    await bare.goto(base + "/");
    await bare.waitForSelector("#token-dialog[open]", { timeout: 30000 });
    result.token_prompt = await bare.evaluate(() => document.getElementById("token-why").textContent);
    await bare.close();
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + "\n");
