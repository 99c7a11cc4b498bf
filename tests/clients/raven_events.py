"""Sends events to picket with raven 6.10.0 (the legacy /store/ endpoint, deflate bodies)
and prints their ids as JSON.

Usage: SENTRY_DSN=... python raven_events.py
"""
import json
import logging
import os
import sys

from raven import Client
from raven.transport.http import HTTPTransport

logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

# raven's default HTTP timeout is 1 s; a loaded test machine can take longer.
client = Client(os.environ["SENTRY_DSN"] + "?timeout=10", transport=HTTPTransport, raise_send_errors=True,
                install_sys_hook=False, install_logging_hook=False, enable_breadcrumbs=False)


def parse_quantity(text):
    return int(text)


def lookup(table, key):
    return table[key]


ids = {"same_site": [], "other_site": [], "messages": [], "fingerprint": []}
# raven skips an exception whose id() it has seen before; keep each one alive so a new
# exception never reuses a freed one's id.
seen = []
for raw in ["x17", "y42", "not a number"]:
    try:
        parse_quantity(raw)
    except ValueError as e:
        seen.append(e)
        ids["same_site"].append(client.captureException())
try:
    lookup({}, "missing")
except KeyError as e:
    seen.append(e)
    ids["other_site"].append(client.captureException())
for n in [17, 42]:
    ids["messages"].append(client.captureMessage("user %d not found" % n))
for text in ["first custom", "second custom"]:
    ids["fingerprint"].append(client.captureMessage(text, fingerprint=["my-custom-group"]))

missing = [k for k, v in ids.items() if None in v]
if missing:
    sys.exit("raven returned no event id for %s: %s" % (missing, ids))
json.dump(ids, sys.stdout)
