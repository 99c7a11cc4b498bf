// Single sign-on through a real OpenID Connect provider: starts oidc-provider (the certified
// Node implementation) on loopback with a confidential client for picket, then signs people
// in with Debian's chromium (through playwright-core), clicking "Sign in with …" on picket's
// sign-in page, the provider's login and consent forms, and landing back on picket. Prints
// what each person saw, as JSON; throws at the first thing a user would see wrong in the
// flow itself (what picket decided is for the Rust test to judge).
// Env: PICKET_URL, PROVIDER_PORT, CLIENT_SECRET.
import { chromium } from "playwright-core";

// oidc-provider prints its development warnings on standard output; the JSON goes there.
console.log = console.info = console.warn = console.error;
const { default: Provider } = await import("oidc-provider");

const base = process.env.PICKET_URL;
const issuer = `http://127.0.0.1:${process.env.PROVIDER_PORT}`;

// The provider's people: their claims as the provider vouches for them.
const people = {
  ann: { email: "ann@example.com", email_verified: true, groups: ["picket-admins", "staff"] },
  bob: { email: "Bob@Example.com", email_verified: true, groups: ["staff"] },
  eve: { email: "eve@elsewhere.org", email_verified: true, groups: ["picket-admins"] },
  una: { email: "una@example.com", email_verified: false, groups: [] },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "picket",
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [`${base}/login/sso/callback`],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
  scopes: ["openid", "email", "groups"],
  findAccount: async (ctx, id) =>
    people[id] && { accountId: id, claims: async () => ({ sub: `sub-${id}`, ...people[id] }) },
  cookies: { keys: ["picket-test-cookie-key"] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});
provider.proxy = false;
const server = provider.listen(Number(process.env.PROVIDER_PORT));

function check(condition, what) {
  if (!condition) throw new Error(`SSO flow check failed: ${what}`);
}

/// Signs `who` in from picket's sign-in page; what the browser shows at the end.
async function signIn(browser, who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  let callback = null;
  page.on("request", (r) => {
    if (r.url().startsWith(`${base}/login/sso/callback`)) callback = r.url();
  });
  await page.goto(`${base}/login`);
  const button = page.locator("#sso");
  const label = (await button.textContent()).trim();
  await button.click();
  await page.waitForURL((u) => u.href.startsWith(issuer));
  await page.locator('input[name="login"]').fill(who);
  await page.locator('input[name="password"]').fill("anything");
  await page.locator('button[type="submit"]').click();
  // The provider asks once for consent to share the email and groups.
  await page.waitForURL((u) => !u.href.startsWith(issuer) || u.pathname.includes("interaction"));
  if (page.url().startsWith(issuer)) {
    await page.locator('button[type="submit"]').click();
  }
  await page.waitForURL((u) => u.href.startsWith(base), { timeout: 20000 });
  await page.waitForLoadState("load");
  const seen = {
    label,
    path: new URL(page.url()).pathname,
    heading: ((await page.locator("h1").first().textContent()) || "").trim(),
    text: await page.locator("main").innerText(),
    nav: (await page.locator("body").innerText()).trim(),
    callback,
  };
  return { seen, page, context };
}

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = {};
  for (const who of ["ann", "bob", "eve", "una"]) {
    const { seen, page, context } = await signIn(browser, who);
    check(seen.callback, `${who}: the provider sent the browser back to picket's callback`);
    if (who === "ann") {
      // The provider's answer works once: the same callback again is refused.
      await page.goto(seen.callback);
      seen.replayed = (await page.locator("main").innerText()).trim();
      // Signed in all the same: the projects page still opens.
      await page.goto(`${base}/`);
      seen.after_replay = new URL(page.url()).pathname;
    }
    if (seen.path === "/") {
      // New accounts are members of the configured projects.
      const resp = await page.goto(`${base}/projects/default`);
      seen.default_project = resp.status();
    }
    out[who] = seen;
    await context.close();
  }
  await browser.close();
  server.close();
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  server.close();
  process.exit(1);
});
