"""Sends events to picket with the official sentry-sdk and prints their ids as JSON.

Usage: SENTRY_DSN=... python sentry_sdk_events.py
Output: {"same_site": [...], "other_site": [...], "messages": [...], "fingerprint": [...]}
"""
import json
import os
import sys

import sentry_sdk

sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], environment="test", release="app@1.0.0",
                default_integrations=False, auto_enabling_integrations=False)


def parse_quantity(text):
    return int(text)


def lookup(table, key):
    return table[key]


ids = {"same_site": [], "other_site": [], "messages": [], "fingerprint": []}
for raw in ["x17", "y42", "not a number"]:
    try:
        parse_quantity(raw)
    except ValueError:
        ids["same_site"].append(sentry_sdk.capture_exception())
try:
    lookup({}, "missing")
except KeyError:
    ids["other_site"].append(sentry_sdk.capture_exception())
for n in [17, 42]:
    ids["messages"].append(sentry_sdk.capture_message("user %d not found" % n))
for text in ["first custom", "second custom"]:
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["my-custom-group"]
        ids["fingerprint"].append(sentry_sdk.capture_message(text))

sentry_sdk.flush(timeout=10)
json.dump(ids, sys.stdout)
