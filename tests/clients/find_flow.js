// Debian's chromium with @sentry/browser (its default integrations, so the request carries
// chromium's own User-Agent) reports an error to picket; then, signed in, it opens the pages
// of finding things at 1280 and 390 px wide, measures whether any scrolls sideways, takes
// screenshots, and on a chained Flask exception checks the "caused by" label and that the
// folded framework frames expand. Prints what it saw as JSON.
// Env: PICKET_URL, SENTRY_DSN, PICKET_EMAIL, PICKET_PASSWORD, PAYMENT_ISSUE, CHECKOUT_ISSUE;
// argv[2]: a work directory (screenshots go to its shots/).
const fs = require("fs");
const path = require("path");
const shop = require("./shop");
const { chromium } = require("playwright-core");

const workdir = process.argv[2];
const base = process.env.PICKET_URL;

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function main() {
  fs.mkdirSync(path.join(workdir, "shots"), { recursive: true });
  const bundle = await shop.bundle(workdir, `import * as Sentry from "@sentry/browser";
Sentry.init({ dsn: window.SENTRY_DSN, release: "web@2.0.0", environment: "production", sendClientReports: false });
window.report = async function report() {
  const id = Sentry.captureException(new Error("shop is down"));
  await Sentry.flush(10000);
  return id;
};
`);
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  const page = await browser.newPage();
  await page.goto(await shop.serve(page, base, bundle, process.env.SENTRY_DSN));
  const agent = await page.evaluate(() => navigator.userAgent);
  const version = (agent.match(/Chrome\/([\d.]+)/) || [])[1];
  check(version, `a Chrome version in ${agent}`);
  check(await page.evaluate(() => window.report()), "the SDK sent the error");

  await page.goto(`${base}/login`);
  await page.getByLabel("Email").fill(process.env.PICKET_EMAIL);
  await page.getByLabel("Password").fill(process.env.PICKET_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/`);

  const payment = `${base}/projects/default/issues/${process.env.PAYMENT_ISSUE}/`;
  const checkout = `${base}/projects/default/issues/${process.env.CHECKOUT_ISSUE}/`;
  const pages = {
    projects: `${base}/?range=7d`,
    list: `${base}/projects/default/?status=all`,
    search: `${base}/projects/default/?q=${encodeURIComponent("browser.name:Chrome")}`,
    issue: `${payment}`,
    events: `${checkout}events/?q=${encodeURIComponent("release:shop@1.1")}`,
    scoped: `${checkout}?environment=production&range=30d`,
    settings: `${base}/projects/default/settings`,
    releases: `${base}/projects/default/releases`,
    feedback: `${base}/projects/default/feedback`,
    monitors: `${base}/projects/default/monitors`,
    account: `${base}/account`,
    users: `${base}/admin/users`,
  };
  const widths = {};
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    for (const [name, url] of Object.entries(pages)) {
      await page.goto(url);
      const size = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }));
      widths[`${name}@${width}`] = size;
      await page.screenshot({ path: path.join(workdir, "shots", `find-${name}-${width}.png`), fullPage: true });
    }
  }

  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(payment);
  const folded = page.locator("details.framework").first();
  check((await folded.count()) === 1, "a folded group of framework frames");
  const foldedBefore = !(await folded.evaluate((d) => d.open));
  const hiddenFrame = folded.locator(".frame").first();
  const hiddenBefore = !(await hiddenFrame.isVisible());
  await folded.locator(":scope > summary").click();
  await hiddenFrame.waitFor({ state: "visible", timeout: 5000 });
  const label = await page.locator(".chain-label").first().textContent();
  await page.screenshot({ path: path.join(workdir, "shots", "find-trace-1280.png"), fullPage: true });
  await browser.close();
  console.log(JSON.stringify({
    browser_version: version,
    folded_before: foldedBefore && hiddenBefore,
    expanded: true,
    chain_label: label,
    widths,
  }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
