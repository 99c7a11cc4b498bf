// Loads a small page in Debian's chromium with @sentry/browser reporting to picket: it reports
// an error, sends feedback about it with `Sentry.captureFeedback`, then opens the crash-report
// dialog with `Sentry.showReportDialog`, checks what the dialog shows (prefilled user, the
// title as text, a refused empty form), submits it and closes it. Finally it signs in to
// picket, follows the dialog's report from the feedback page to its issue and prints the
// event id and the issue page's text.
// Env: PICKET_URL, SENTRY_DSN, PICKET_EMAIL, PICKET_PASSWORD; argv[2]: a work directory.
const shop = require("./shop");
const { chromium } = require("playwright-core");

const workdir = process.argv[2];
const base = process.env.PICKET_URL;
const TITLE = 'Sorry </script><img src=x onerror="window.PWNED=1">';

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function main() {
  const bundle = await shop.bundle(workdir, `import * as Sentry from "@sentry/browser";
Sentry.init({ dsn: window.SENTRY_DSN, release: "web@1.0.0", defaultIntegrations: false, sendClientReports: false });
Sentry.setUser({ id: "u-42", username: "dialog-user" });
window.report = async function report() {
  let eventId;
  try {
    JSON.parse("{not json");
  } catch (e) {
    eventId = Sentry.captureException(e);
  }
  await Sentry.flush(10000);
  Sentry.captureFeedback({
    message: "The pay button did nothing",
    name: "Browser User",
    email: "browser@example.com",
    url: "https://shop.example/pay",
    associatedEventId: eventId,
  });
  await Sentry.flush(10000);
  return eventId;
};
window.openDialog = function openDialog(eventId, title) {
  window.DIALOG_CLOSED = false;
  Sentry.showReportDialog({
    eventId,
    title,
    user: { name: "Dialog User", email: "dialog@example.com" },
    onClose: () => { window.DIALOG_CLOSED = true; },
  });
};
`);

  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  const page = await browser.newPage();
  await page.goto(await shop.serve(page, base, bundle, process.env.SENTRY_DSN));
  const eventId = await page.evaluate(() => window.report());
  check(eventId, "the SDK sent an event");

  // The crash-report dialog, loaded by the SDK from picket.
  await page.evaluate(([id, title]) => window.openDialog(id, title), [eventId, TITLE]);
  const dialog = page.locator(".sentry-error-embed");
  await dialog.waitFor({ timeout: 15000 });
  check((await dialog.locator("h2").textContent()) === TITLE, "the title shows as text");
  check((await page.evaluate(() => window.PWNED)) === undefined, "nothing in the title ran");
  check((await page.getByLabel("Name").inputValue()) === "Dialog User", "the user's name is filled in");
  check((await page.getByLabel("Email").inputValue()) === "dialog@example.com", "and the email");
  await page.getByRole("button", { name: "Submit Crash Report" }).click();
  await dialog.getByText("This field is required.").waitFor({ timeout: 10000 });
  await page.getByLabel("What happened?").fill("I clicked pay twice and got a blank page");
  await page.getByRole("button", { name: "Submit Crash Report" }).click();
  await page.locator(".sentry-dialog-success").waitFor({ timeout: 10000 });
  await page.getByRole("button", { name: "Close" }).click();
  await page.waitForFunction(() => window.DIALOG_CLOSED === true, null, { timeout: 10000 });
  check((await page.locator(".sentry-error-embed-wrapper").count()) === 0, "the dialog is gone");

  // The issue page, signed in, shows both reports.
  await page.goto(`${base}/login`);
  await page.getByLabel("Email").fill(process.env.PICKET_EMAIL);
  await page.getByLabel("Password").fill(process.env.PICKET_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/`);
  await page.goto(`${base}/projects/default/feedback`);
  const dialogReport = page.locator(".feedback", { hasText: "I clicked pay twice" });
  check((await dialogReport.count()) === 1, "the dialog's report is listed once");
  await dialogReport.getByRole("link", { name: /^issue / }).click();
  await page.waitForURL(/\/issues\/\d+\/$/);
  const issuePage = await page.textContent("main");
  await browser.close();
  console.log(JSON.stringify({ event_id: eventId.replace(/-/g, ""), issue_page: issuePage }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
