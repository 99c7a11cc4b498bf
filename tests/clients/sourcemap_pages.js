// Signs in to picket in Debian's chromium and checks what the source-map pages show: the
// issue's original frames with their source line, the minified ones behind a toggle, and the
// project's uploads, one of which it deletes.
// Env: PICKET_URL, PICKET_EMAIL, PICKET_PASSWORD, ISSUE (the issue number).
const { chromium } = require("playwright-core");

const base = process.env.PICKET_URL;
function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function main() {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  const page = await browser.newPage();
  await page.goto(`${base}/login`);
  await page.getByLabel("Email").fill(process.env.PICKET_EMAIL);
  await page.getByLabel("Password").fill(process.env.PICKET_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/`);

  await page.goto(`${base}/projects/default/issues/${process.env.ISSUE}/`);
  const frames = await page.locator(".exception > .frame .where").allTextContents();
  check(frames.some((f) => f.startsWith("src/cart.js:6") && f.includes("computeTotal")), `the top frame is the original one: ${frames}`);
  check((await page.textContent(".exception")).includes('throw new Error("price missing for " + item.sku);'), "its source line shows");
  const raw = page.locator("details.raw-frames");
  check(await raw.count() === 1, "the minified frames are behind a toggle");
  check(!(await raw.locator(".frame").first().isVisible()), "and folded");
  await raw.locator("summary").click();
  check((await raw.textContent()).includes("/shop/static/app.js"), "unfolded, they show the minified file");

  await page.goto(`${base}/projects/default/sourcemaps`);
  const rows = page.locator("#uploads tr");
  const before = await rows.count();
  check(before === 4, `three uploads are listed (plus the heading): ${before}`);
  check((await page.textContent("#uploads")).includes("shop@3"), "the release upload shows its release");
  await rows.nth(1).getByRole("button", { name: "Delete" }).click();
  check((await page.locator("#uploads tr").count()) === before - 1, "deleting removes the upload");

  await browser.close();
  console.log(JSON.stringify({ ok: true }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
