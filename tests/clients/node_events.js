// Sends events to picket with the official @sentry/node SDK and prints their ids as JSON.
// Usage: SENTRY_DSN=... node node_events.js
const Sentry = require("@sentry/node");

Sentry.init({ dsn: process.env.SENTRY_DSN, environment: "test", release: "app@1.0.0", defaultIntegrations: false });

function parseQuantity(text) {
  const n = Number.parseInt(text, 10);
  if (Number.isNaN(n)) throw new TypeError(`not a quantity: ${text}`);
  return n;
}

function lookup(table, key) {
  if (!(key in table)) throw new RangeError(`no such key: ${key}`);
  return table[key];
}

async function main() {
  const ids = { same_site: [], other_site: [], messages: [], fingerprint: [] };
  for (const raw of ["x17", "y42", "not a number"]) {
    try { parseQuantity(raw); } catch (e) { ids.same_site.push(Sentry.captureException(e)); }
  }
  try { lookup({}, "missing"); } catch (e) { ids.other_site.push(Sentry.captureException(e)); }
  for (const n of [17, 42]) ids.messages.push(Sentry.captureMessage(`user ${n} not found`));
  for (const text of ["first custom", "second custom"]) {
    ids.fingerprint.push(Sentry.withScope((scope) => {
      scope.setFingerprint(["my-custom-group"]);
      return Sentry.captureMessage(text);
    }));
  }
  const flushed = await Sentry.flush(10000);
  if (!flushed) { console.error("flush timed out"); process.exit(1); }
  process.stdout.write(JSON.stringify(ids));
}

main().catch((e) => { console.error(e); process.exit(1); });
