// Logs in to Superset and screenshots vigil's dashboard once its charts have drawn.
// Usage: node superset.mjs SUPERSET_URL PNG [USER PASSWORD]
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, png, user = "admin", password = "admin"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "vigil-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  viewport: { width: 1400, height: 900 },
});
const errors = [];
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/login/");
  await page.fill("#username", user);
  await page.fill("#password", password);
  await Promise.all([page.waitForNavigation(), page.click("input[type=submit], button[type=submit]")]);
  await page.goto(base + "/superset/dashboard/vigil/?standalone=1");
  // Four charts, each drawn (a canvas for ECharts, a table for the tables), no spinner left.
  const drawn = page.waitForFunction(() => {
    const holders = document.querySelectorAll(".dashboard-component-chart-holder");
    const drawn = [...holders].filter((h) => h.querySelector("canvas, table tbody tr"));
    return holders.length === 4 && drawn.length === 4 && !document.querySelector(".loading");
  }, null, { timeout: 90000 });
  await drawn.catch(async (e) => {
    await page.screenshot({ path: png });
    throw e;
  });
  await page.waitForTimeout(1500);
  const charts = await page.evaluate(() => document.querySelectorAll(".dashboard-component-chart-holder").length);
  await page.screenshot({ path: png });
  process.stdout.write(JSON.stringify({ charts, errors }) + "\n");
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
