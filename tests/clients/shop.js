// The small shop page the browser tests load: a script using @sentry/browser, bundled with
// esbuild, served with the project's DSN under picket's own origin at /shop/ (chromium's
// private network rules would stop a public origin from calling loopback).
const fs = require("fs");
const path = require("path");
const esbuild = require("esbuild");

// Bundles `source` (an ES module) in `workdir`; returns the bundle's path.
async function bundle(workdir, source) {
  fs.mkdirSync(workdir, { recursive: true });
  const entry = path.join(workdir, "page.js");
  fs.writeFileSync(entry, source);
  const out = path.join(workdir, "page.bundle.js");
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    outfile: out,
    format: "iife",
    nodePaths: [path.join(__dirname, "node_modules")],
    logLevel: "silent",
  });
  return out;
}

// Serves the shop with the bundle on `page`; returns the shop's URL.
async function serve(page, base, bundlePath, dsn) {
  const shop = `${base}/shop`;
  await page.route(`${shop}/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === "/shop/") {
      return route.fulfill({
        contentType: "text/html",
        body: `<!doctype html><title>shop</title><script>window.SENTRY_DSN = ${JSON.stringify(dsn)};</script>
          <script src="/shop/page.js"></script>`,
      });
    }
    if (url.pathname === "/shop/page.js") {
      return route.fulfill({ contentType: "application/javascript", body: fs.readFileSync(bundlePath) });
    }
    return route.fulfill({ status: 404, body: "" });
  });
  return `${shop}/`;
}

module.exports = { bundle, serve };
