// Builds a small shop app with esbuild (minified, with source maps), prepares and uploads its
// maps with the real sentry-cli, loads it in Debian's chromium with @sentry/browser reporting to
// picket, and prints the id of the event it sent.
//
// node sourcemap_flow.js WORKDIR VARIANT, VARIANT one of:
//   debug-ids   minified, `sentry-cli sourcemaps inject` then `upload` (debug ids)
//   debug-ids-2 minified differently (other names and columns), injected and uploaded
//   release     minified, no debug ids: `upload --release shop@3 --url-prefix ~/shop/static`
// Env: PICKET_URL, SENTRY_DSN, SENTRY_AUTH_TOKEN.
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");
const esbuild = require("esbuild");
const { chromium } = require("playwright-core");

const [workdir, variant] = process.argv.slice(2);
const clients = __dirname;
const src = path.join(workdir, "src");
const out = path.join(workdir, "static");
fs.mkdirSync(src, { recursive: true });
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

fs.writeFileSync(path.join(src, "cart.js"), `// The cart's arithmetic.
export function computeTotal(items) {
  let total = 0;
  for (const item of items) {
    if (item.price === undefined) {
      throw new Error("price missing for " + item.sku);
    }
    total += item.price * item.quantity;
  }
  return total;
}
`);
fs.writeFileSync(path.join(src, "checkout.js"), `import { computeTotal } from "./cart.js";

export function checkout(cart) {
  const total = computeTotal(cart.items);
  return { total, currency: "EUR" };
}
`);
fs.writeFileSync(path.join(src, "main.js"), `import * as Sentry from "@sentry/browser";
import { checkout } from "./checkout.js";

Sentry.init({
  dsn: window.SENTRY_DSN,
  release: window.SENTRY_RELEASE,
  defaultIntegrations: false,
  sendClientReports: false,
});

window.runShop = async function runShop() {
  try {
    checkout({ items: [{ sku: "A-1", price: 5, quantity: 2 }, { sku: "B-7", quantity: 1 }] });
  } catch (e) {
    window.SENTRY_EVENT = Sentry.captureException(e);
  }
  await Sentry.flush(10000);
  return window.SENTRY_EVENT;
};
`);

async function main() {
  const second = variant === "debug-ids-2";
  await esbuild.build({
    entryPoints: [path.join(src, "main.js")],
    bundle: true,
    outfile: path.join(out, "app.js"),
    format: "iife",
    sourcemap: true,
    // The second build minifies differently: other names, other columns.
    minify: !second,
    minifyWhitespace: true,
    minifyIdentifiers: !second,
    minifySyntax: !second,
    banner: second ? { js: "/* shop, second build */" } : undefined,
    nodePaths: [path.join(clients, "node_modules")],
    logLevel: "silent",
  });

  const cli = path.join(clients, "node_modules", ".bin", "sentry-cli");
  const env = {
    PATH: process.env.PATH,
    HOME: workdir,
    SENTRY_URL: process.env.PICKET_URL,
    SENTRY_AUTH_TOKEN: process.env.SENTRY_AUTH_TOKEN,
    SENTRY_ORG: "picket",
    SENTRY_PROJECT: "default",
    SENTRY_DISABLE_UPDATE_CHECK: "1",
    SENTRY_LOAD_DOTENV: "0",
  };
  const run = (args) => execFileSync(cli, args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  let release;
  if (variant === "release") {
    release = "shop@3";
    run(["releases", "new", release]);
    run(["sourcemaps", "upload", "--release", release, "--url-prefix", "~/shop/static", out]);
  } else {
    run(["sourcemaps", "inject", out]);
    run(["sourcemaps", "upload", out]);
  }

  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  const page = await browser.newPage();
  // The shop is served under picket's own origin, so the SDK's requests to the DSN are
  // same-origin (a public origin calling loopback would meet chromium's private network rules).
  const shop = `${process.env.PICKET_URL}/shop`;
  await page.route(`${shop}/**`, async (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === "/shop/") {
      return route.fulfill({
        contentType: "text/html",
        body: `<!doctype html><script>window.SENTRY_DSN = ${JSON.stringify(process.env.SENTRY_DSN)};
          window.SENTRY_RELEASE = ${JSON.stringify(release)};</script>
          <script src="/shop/static/app.js"></script>`,
      });
    }
    const file = path.join(out, path.basename(url.pathname));
    if (url.pathname.startsWith("/shop/static/") && fs.existsSync(file)) {
      return route.fulfill({ contentType: "application/javascript", body: fs.readFileSync(file) });
    }
    return route.fulfill({ status: 404, body: "" });
  });
  await page.goto(`${shop}/`);
  const eventId = await page.evaluate(() => window.runShop());
  await browser.close();
  if (!eventId) throw new Error("the SDK sent no event");
  console.log(JSON.stringify({ event_id: eventId.replace(/-/g, "") }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  if (e.stderr) console.error(String(e.stderr));
  process.exit(1);
});
