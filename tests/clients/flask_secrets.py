# A Flask app with sentry-sdk (send_default_pii=True): one request to /checkout carries an
# Authorization header, a session cookie, a password form field and a card number, and the
# view holds an API key in a local variable when it raises. Prints the event id.
import os

import sentry_sdk
from flask import Flask, request
from sentry_sdk.scrubber import EventScrubber

sent = []


def remember(event, hint):
    sent.append(event["event_id"])
    return event


sentry_sdk.init(
    dsn=os.environ["SENTRY_DSN"],
    before_send=remember,
    # The SDK's own scrubber off: most SDKs (raven, the JavaScript ones) have none, and what
    # picket does must not depend on one.
    event_scrubber=EventScrubber(denylist=[], pii_denylist=[]),
    send_default_pii=True,
    send_client_reports=False,
    release="shop@1.0",
)

# The secrets are joined from pieces so that the source lines the SDK sends as frame context
# (code, which is not scrubbed) do not spell them.
API_KEY = "sk_live_" + "FRAMEVARSECRET42"
TOKEN = "HEADERTOKEN" + "SECRET99"
COOKIE = "COOKIE" + "SECRET55"
PASSWORD = "FORMPASSWORD" + "SECRET"
QUERY = "QUERY" + "SECRET77"

app = Flask(__name__)


@app.route("/checkout", methods=["POST"])
def checkout():
    api_key = API_KEY
    card = request.form["card"]
    raise ValueError(f"payment with card {card} declined (key {len(api_key)} chars)")


client = app.test_client()
client.set_cookie("sessionid", COOKIE)
client.set_cookie("theme", "dark")
try:
    client.post(
        "/checkout?coupon=SPRING&access_token=" + QUERY,
        data={"username": "ada", "password": PASSWORD, "card": "4242 4242 4242 4242"},
        headers={"Authorization": "Bearer " + TOKEN},
    )
except ValueError:
    pass
sentry_sdk.flush(timeout=10)
print(sent[-1] if sent else "")
