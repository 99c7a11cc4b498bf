// Two people triage together in Debian's chromium (through playwright-core) while
// @sentry/node feeds the server: the owner adds a webhook and tests it; the member is refused
// the forwarding and key forms; the member assigns the issue to the owner and comments; the
// owner sees "assigned to me" and the comment; resolve in the next release, an event of the
// old release does not reopen the issue and one of a newer release does; the list marks New
// and Regressed and shows a new event without a reload. Every page visited is watched for
// Content-Security-Policy violations. Throws (exit status 1) at the first thing a user would
// see wrong.
// Env: PICKET_URL, SENTRY_DSN, OWNER_EMAIL, MEMBER_EMAIL, ADMIN_EMAIL, PASSWORD, HOOK_URL,
// SCREENSHOTS (a directory).
const { chromium } = require("playwright-core");
const Sentry = require("@sentry/node");

const base = process.env.PICKET_URL;
const shots = process.env.SCREENSHOTS;
const violations = [];

function check(condition, what) {
  if (!condition) throw new Error(`UI check failed: ${what}`);
}

function chargeCard() {
  throw new Error("card declined by the payment gateway");
}

let currentRelease = "shop@1.0";

async function report(release, fn) {
  currentRelease = release;
  await new Promise((resolve) => setTimeout(resolve, 1));
  try {
    fn();
  } catch (e) {
    Sentry.captureException(e);
  }
  await Sentry.flush(10000);
}

async function signIn(browser, email) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    const text = m.text();
    if (/Content Security Policy|Refused to (apply|execute|load|connect)/.test(text)) violations.push(`${email} ${page.url()}: ${text}`);
  });
  await page.goto(`${base}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(process.env.PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/login"));
  return page;
}

async function csrfOf(page) {
  return page.locator('input[name="csrf"]').first().inputValue();
}

async function statusOf(page, url) {
  await page.goto(url);
  return (await page.textContent("#issue-status")).trim();
}

async function main() {
  Sentry.init({ dsn: process.env.SENTRY_DSN, defaultIntegrations: false, sendClientReports: false, environment: "production", release: "shop@1.0", beforeSend: (event) => ({ ...event, release: currentRelease }) });
  await report("shop@1.0", chargeCard);

  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  const owner = await signIn(browser, process.env.OWNER_EMAIL);
  const member = await signIn(browser, process.env.MEMBER_EMAIL);

  // The owner adds a webhook in the UI and sends it a test; the answer shows.
  await owner.goto(`${base}/projects/default/settings`);
  await owner.getByLabel("Webhook URL").fill(process.env.HOOK_URL);
  await owner.getByRole("button", { name: "Add webhook" }).click();
  await owner.waitForURL(/\/settings$/);
  check((await owner.textContent("#webhooks")).includes(process.env.HOOK_URL), "the webhook is listed");
  await owner.getByRole("button", { name: "Send a test" }).click();
  const answer = (await owner.textContent("#webhook-answer")).trim();
  check(answer.includes("answered HTTP 200"), `the test's answer shows: ${answer}`);

  // The member sees no key or forwarding forms, and posting them anyway is refused.
  await member.goto(`${base}/projects/default/settings`);
  check(await member.locator("#not-owner").count() === 1, "the member is told owners change the settings");
  check(await member.getByRole("button", { name: "Revoke" }).count() === 0, "no revoke button for a member");
  const csrf = await csrfOf(member);
  const key = (await member.locator("table code").first().textContent()).trim();
  for (const [path, form] of [
    ["forward", { csrf, dsn: "https://abc@upstream.example.com/1" }],
    ["key-revoke", { csrf, key, confirm: "yes" }],
    ["key-create", { csrf }],
    ["retention", { csrf, max_events: "10" }],
  ]) {
    const r = await member.request.post(`${base}/projects/default/settings/${path}`, { form, maxRedirects: 0 });
    check(r.status() === 403, `the member's ${path} is refused with 403, not ${r.status()}`);
  }

  // The member assigns the issue to the owner and comments.
  await member.goto(`${base}/projects/default/`);
  const link = member.getByRole("link", { name: /card declined/ });
  check(await link.count() === 1, "the issue is listed once");
  check((await member.textContent("tr.issue-row")).includes("New"), "a new issue is marked New");
  await link.click();
  await member.waitForURL(/\/issues\/\d+\//);
  const issueUrl = member.url();
  await member.getByLabel("Assign to").selectOption(process.env.OWNER_EMAIL);
  await member.getByRole("button", { name: "Assign", exact: true }).click();
  await member.waitForURL(/#activity$/);
  check((await member.textContent("#assignee")).trim() === process.env.OWNER_EMAIL, "the issue shows its assignee");
  await member.getByLabel("Comment", { exact: true }).fill("Gateway timeouts again, see https://status.example.com/incidents/42. <b>not bold</b>");
  await member.getByRole("button", { name: "Comment", exact: true }).click();
  await member.waitForURL(/#activity$/);

  // The owner finds it under "assigned to me" and reads the comment in the activity.
  await owner.goto(`${base}/projects/default/?assigned=me`);
  check(await owner.getByRole("link", { name: /card declined/ }).count() === 1, "the issue is under assigned to me");
  check(await owner.locator(".avatar").count() === 1, "the list shows the assignee's initials");
  await owner.goto(`${base}/projects/default/?assigned=none`);
  check(await owner.getByRole("link", { name: /card declined/ }).count() === 0, "an assigned issue is not unassigned");
  await owner.goto(issueUrl);
  const activity = await owner.textContent("ol.timeline");
  check(activity.includes(`${process.env.MEMBER_EMAIL} assigned to ${process.env.OWNER_EMAIL}`), `the assignment is in the activity: ${activity}`);
  check(activity.includes("Gateway timeouts again") && activity.includes("<b>not bold</b>"), "the comment shows, as text");
  const href = await owner.locator(".comment a").getAttribute("href");
  check(href === "https://status.example.com/incidents/42", `the comment's link is clickable: ${href}`);
  check(await owner.locator(".comment b").count() === 0, "no markup from a comment");
  if (shots) await owner.screenshot({ path: `${shots}/issue-triage.png`, fullPage: true });

  // Resolved in the next release: an event of shop@1.0 does not reopen it, one of shop@1.1 does.
  await owner.getByRole("button", { name: "Resolve in next release" }).click();
  await owner.waitForURL(issueUrl);
  check((await owner.textContent("#issue-status")).trim() === "resolved", "resolved");
  check((await owner.textContent("#status-detail")).includes("next release (after shop@1.0)"), "it says in which release");
  await report("shop@1.0", chargeCard);
  check(await statusOf(owner, issueUrl) === "resolved", "an event of the old release does not reopen it");
  await report("shop@1.1", chargeCard);
  check(await statusOf(owner, issueUrl) === "unresolved", "an event of a newer release reopens it");
  check((await owner.textContent("ol.timeline")).includes("regressed: a new event in release shop@1.1"), "the regression is in the activity");

  // The list marks it Regressed, and shows a new event without a reload.
  await owner.goto(`${base}/projects/default/`);
  const row = owner.locator("tr.issue-row", { hasText: "card declined" });
  check((await row.textContent()).includes("Regressed"), "a reopened issue is marked Regressed");
  const before = Number((await row.locator(".live-count").textContent()).trim());
  if (shots) await owner.screenshot({ path: `${shots}/issue-list-marks.png`, fullPage: true });
  await report("shop@1.1", chargeCard);
  await owner.waitForFunction(
    (n) => Number(document.querySelector("tr.issue-row .live-count").textContent) > n,
    before,
    { timeout: 10000 },
  );
  check(owner.url().endsWith("/projects/default/"), "the page was not reloaded");
  await report("shop@1.1", () => { throw new TypeError("a brand new problem"); });
  await owner.waitForSelector("#live-note:not([hidden])", { timeout: 10000 });
  check((await owner.textContent("#live-note")).includes("new or changed issue"), "a new issue is announced");

  // Every page, as an admin too, without a single CSP violation.
  const admin = await signIn(browser, process.env.ADMIN_EMAIL);
  const pages = ["/", "/projects/default/", "/projects/default/?status=all", issueUrl, "/projects/default/settings",
    "/projects/default/releases", "/projects/default/feedback", "/projects/default/monitors",
    "/projects/default/sourcemaps", "/account", "/admin/users", `${new URL(issueUrl).pathname}delete`,
    "/projects/default/delete"];
  for (const p of pages) {
    const r = await admin.goto(`${base}${p.startsWith("http") ? new URL(p).pathname : p}`);
    check(r.status() === 200, `${p} answers 200, not ${r.status()}`);
  }
  for (const p of ["/", issueUrl, "/projects/default/settings"]) await member.goto(p.startsWith("http") ? p : `${base}${p}`);
  check(violations.length === 0, `no Content-Security-Policy violation:\n${violations.join("\n")}`);

  await browser.close();
  console.log(JSON.stringify({ ok: true, issue: issueUrl }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
