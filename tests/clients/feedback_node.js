// Sends user feedback to picket with the official @sentry/node SDK: about an event sent just
// before, about an event sent only afterwards, and about no event; prints the ids as JSON.
// Usage: SENTRY_DSN=... node feedback_node.js
const crypto = require("crypto");
const Sentry = require("@sentry/node");

Sentry.init({ dsn: process.env.SENTRY_DSN, release: "shop@2.0.0", environment: "production", defaultIntegrations: false });

async function flushed() {
  if (!(await Sentry.flush(10000))) throw new Error("flush timed out");
}

async function main() {
  const before = Sentry.captureException(new Error("checkout failed"));
  await flushed();
  Sentry.captureFeedback({
    message: "I clicked Pay and nothing happened",
    name: "Ann Example",
    email: "ann@example.com",
    url: "https://shop.example/checkout",
    associatedEventId: before,
  });
  // Feedback about an event that reaches the server only afterwards.
  const after = crypto.randomUUID().replace(/-/g, "");
  Sentry.captureFeedback({ message: "The page went blank", email: "bo@example.com", associatedEventId: after });
  await flushed();
  Sentry.captureException(new Error("blank page"), { event_id: after });
  Sentry.captureFeedback({ message: "Please add dark mode", name: "Cy" });
  await flushed();
  process.stdout.write(JSON.stringify({ before, after }));
}

main().catch((e) => { console.error(e); process.exit(1); });
