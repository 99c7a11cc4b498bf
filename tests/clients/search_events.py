# Events with known tags, users, releases and environments, sent by sentry-sdk (with its Flask
# integration for one request), for the search tests. Four issues:
#   checkout  KeyError('cart') in checkout(): 4 events in production (users 1, 2, 2, 3;
#             shop@1.0 twice, then shop@1.1 twice) and 2 in staging (user 1, shop@1.1),
#             tag region=eu
#   orders    "order 1234 failed" then "order 5678 failed" (one fingerprint), warning,
#             production, shop@1.1, user id 7 / username olga
#   payment   ValueError raised from a KeyError in a Flask view (POST /pay), staging,
#             shop@1.1, tag region=us, user pay@example.com
#   legacy    ZeroDivisionError, production, shop@1.0 (the test resolves it)
# Prints {"name": last event id} as JSON.
import json
import os

import sentry_sdk
from flask import Flask

sent = {}
current = {"name": None}


def remember(event, hint):
    sent[current["name"]] = event["event_id"]
    return event


def init(environment, release):
    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        before_send=remember,
        environment=environment,
        release=release,
        send_default_pii=True,
        send_client_reports=False,
        default_integrations=True,
    )


def checkout():
    cart = {}
    return cart["cart"]


def send_checkout(user):
    current["name"] = "checkout"
    with sentry_sdk.new_scope() as scope:
        scope.set_user({"id": str(user), "email": f"user{user}@example.com"})
        scope.set_tag("region", "eu")
        try:
            checkout()
        except KeyError as e:
            sentry_sdk.capture_exception(e)


init("production", "shop@1.0")
current["name"] = "legacy"
try:
    1 / 0
except ZeroDivisionError as e:
    sentry_sdk.capture_exception(e)
for user in (1, 2):
    send_checkout(user)
sentry_sdk.flush(timeout=10)

init("production", "shop@1.1")
for user in (2, 3):
    send_checkout(user)
current["name"] = "orders"
for number in (1234, 5678):
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["order-failed"]
        scope.set_user({"id": "7", "username": "olga"})
        sentry_sdk.capture_message(f"order {number} failed", level="warning")
sentry_sdk.flush(timeout=10)

init("staging", "shop@1.1")
for user in (1, 1):
    send_checkout(user)

app = Flask(__name__)


@app.route("/pay", methods=["POST"])
def pay():
    try:
        {}["card"]
    except KeyError as e:
        raise ValueError("payment declined") from e


current["name"] = "payment"
sentry_sdk.set_tag("region", "us")
sentry_sdk.set_user({"email": "pay@example.com"})
try:
    app.test_client().post("/pay")
except ValueError:
    pass
sentry_sdk.flush(timeout=10)
print(json.dumps(sent))
