// Takes one screenshot of a dashboard view (for the README): node shot.mjs URL PNG [TOKEN] [WIDTH HEIGHT]
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, png, token, width = "1280", height = "800"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "vigil-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  viewport: { width: Number(width), height: Number(height) },
});
try {
  const page = context.pages()[0] || (await context.newPage());
  if (token) await page.addInitScript((t) => sessionStorage.setItem("vigil-token", t), token);
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.ready && !document.body.dataset.ready.startsWith("device-missing"), null, { timeout: 30000 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: png });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
