// Drives picket's web UI in Debian's chromium (through playwright-core) while @sentry/node
// feeds the server: sign in, find and open an issue, read its exception, frames and
// breadcrumb, resolve it, see it regress, check that hostile event content shows as text and
// runs nothing, sign out. Throws (exit status 1) at the first thing a user would see wrong.
// Env: PICKET_URL, SENTRY_DSN, PICKET_EMAIL, PICKET_PASSWORD, SCREENSHOTS (a directory).
const { chromium } = require("playwright-core");
const Sentry = require("@sentry/node");

const base = process.env.PICKET_URL;
const shots = process.env.SCREENSHOTS;

function check(condition, what) {
  if (!condition) throw new Error(`UI check failed: ${what}`);
}

function validateCart(cart) {
  if (cart.total === undefined) throw new TypeError("cart total is undefined");
}

function processOrder() {
  validateCart({ items: [42] });
}

async function reportCheckoutError() {
  // Start from a fresh task, so that every report has the same stack (the same issue).
  await new Promise((resolve) => setTimeout(resolve, 1));
  Sentry.addBreadcrumb({ category: "cart", message: "added item 42 to cart", level: "info" });
  try {
    processOrder();
  } catch (e) {
    Sentry.captureException(e);
  }
  await Sentry.flush(10000);
}

async function main() {
  Sentry.init({ dsn: process.env.SENTRY_DSN, defaultIntegrations: false, sendClientReports: false, environment: "production", release: "shop@2.0" });
  await reportCheckoutError();

  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const dialogs = [];
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });

  // Signed out, a project page leads to the sign-in form.
  await page.goto(`${base}/projects/default/`);
  check(page.url().includes("/login"), `a signed-out visit ends at /login, not ${page.url()}`);
  await page.getByLabel("Email").fill(process.env.PICKET_EMAIL);
  await page.getByLabel("Password").fill(process.env.PICKET_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/projects\/default\//);

  // The issue is in the list; its page shows the exception, the frames and the breadcrumb.
  const issueLink = page.getByRole("link", { name: /cart total is undefined/ });
  check(await issueLink.count() === 1, "the issue is listed once");
  await issueLink.click();
  await page.waitForURL(/\/issues\/\d+\//);
  const issueUrl = page.url();
  const body = await page.textContent("body");
  check(body.includes("TypeError"), "the exception type shows");
  check(body.includes("validateCart") && body.includes("processOrder"), "the frames' function names show");
  check(body.includes("added item 42 to cart"), "the breadcrumb shows");
  check(body.includes("production") && body.includes("shop@2.0"), "environment and release show");
  if (shots) await page.screenshot({ path: `${shots}/issue-page.png`, fullPage: true });

  // Resolve: it leaves the unresolved list.
  await page.getByRole("button", { name: "Resolve", exact: true }).click();
  await page.waitForURL(issueUrl);
  check((await page.textContent("#issue-status")).trim() === "resolved", "the issue shows as resolved");
  await page.goto(`${base}/projects/default/`);
  check(await page.getByRole("link", { name: /cart total is undefined/ }).count() === 0, "a resolved issue leaves the unresolved list");

  // A new event reopens it as a regression.
  await reportCheckoutError();
  await page.goto(`${base}/projects/default/`);
  check(await page.getByRole("link", { name: /cart total is undefined/ }).count() === 1, "a regressed issue is back in the unresolved list");
  await page.goto(issueUrl);
  check((await page.textContent("#issue-status")).trim() === "unresolved", "the regressed issue is unresolved");
  check((await page.textContent("body")).includes("Regressions"), "the regression is counted");

  // Hostile content shows literally and runs nothing.
  const payloads = ["<script>window.__xss=1</script>", "<img src=x onerror=\"window.__xss=2\">", "javascript:window.__xss=3"];
  Sentry.captureEvent({
    message: `hostile ${payloads[0]}`,
    level: "error",
    tags: { attack: payloads[1], link: payloads[2] },
    breadcrumbs: [{ category: payloads[1], message: payloads[2], timestamp: Date.now() / 1000 }],
    exception: { values: [{ type: "XSSError", value: payloads[1], stacktrace: { frames: [
      { function: payloads[0], filename: payloads[2], lineno: 1, in_app: true, context_line: payloads[1], pre_context: [payloads[0]] },
    ] } }] },
  });
  await Sentry.flush(10000);
  await page.goto(`${base}/projects/default/?q=XSSError`);
  const hostile = page.getByRole("link", { name: /XSSError/ });
  check(await hostile.count() === 1, "the hostile event's issue is found by search");
  await hostile.click();
  await page.waitForURL(/\/issues\/\d+\//);
  const text = await page.textContent("body");
  for (const p of payloads) check(text.includes(p), `the payload ${p} shows literally`);
  check(await page.evaluate(() => window.__xss) === undefined, "no payload ran");
  check(dialogs.length === 0, "no dialog opened");
  check(await page.locator("main script, main img").count() === 0, "no element was injected");

  await page.goto(`${base}/projects/default/?status=all`);
  if (shots) await page.screenshot({ path: `${shots}/issue-list.png`, fullPage: true });

  // The issue names its first release; the releases page lists it with its events.
  await page.goto(issueUrl);
  check((await page.textContent("#first-release")).trim() === "shop@2.0", "the issue names its first release");
  await page.goto(`${base}/projects/default/releases`);
  const releases = await page.textContent("#releases");
  check(releases.includes("shop@2.0"), "the releases page lists the release");

  // Settings show the lines sentry-cli needs beside the DSN.
  await page.goto(`${base}/projects/default/settings`);
  const cliEnv = await page.textContent("#cli-env");
  check(cliEnv.includes("SENTRY_ORG=picket") && cliEnv.includes("SENTRY_PROJECT=default") && cliEnv.includes(`SENTRY_URL=${base}`), `the settings page shows the sentry-cli lines: ${cliEnv}`);

  // A token made on the account page works against the API until it is revoked.
  await page.goto(`${base}/account`);
  await page.getByLabel("Token name").fill("grafana");
  await page.getByRole("button", { name: "Make token" }).click();
  const token = (await page.textContent("#new-token")).trim();
  check(token.startsWith("sntryu_"), `a token is shown once: ${token}`);
  const api = () => fetch(`${base}/api/0/projects/`, { headers: { Authorization: `Bearer ${token}` } });
  const before = await api();
  check(before.status === 200 && (await before.text()).includes("\"slug\":\"default\""), "the token reads the API");
  await page.goto(`${base}/account`);
  check(!(await page.textContent("body")).includes(token), "the secret is not shown again");
  await page.getByRole("row", { name: /grafana/ }).getByRole("button", { name: "Revoke" }).click();
  check((await api()).status === 401, "a revoked token is refused");

  // Signed out, the issue page is refused.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login/);
  await page.goto(issueUrl);
  check(page.url().includes("/login"), "after signing out the issue page leads to /login");
  check(!(await page.textContent("body")).includes("cart total is undefined"), "no issue content without a session");

  await browser.close();
  console.log(JSON.stringify({ ok: true }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
