#!/usr/bin/env bash
# Compares picket with Bugsink 2.x (PyPI) under the same load: the ingest harness
# (benches/ingest.rs) replays the same captured sentry-sdk and @sentry/node envelopes over 32
# keep-alive connections at each, and this script counts what each fully processed: for
# Bugsink, the events its digestion stored (rows of events_event), counted over the whole run
# including the time its backlog takes to drain; for picket, the events in its store.
#
# Bugsink is run the way its docs describe for production on one server: the singleserver
# config, all six event quotas raised to 1e9 (its stress-testing docs), PHONEHOME off,
# digestion through its snappea queue, gunicorn with 2 workers (min(cores, 4)).
#
# Run: benches/bugsink.sh   (LOAD_SECONDS=30 by default; needs ./scripts/test's clients)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${LOAD_SECONDS:-30}
port=${BUGSINK_PORT:-8765}
work=$(mktemp -d)
echo "work dir: $work"
# Stop everything started from the work dir (gunicorn forks workers) and remove it.
trap 'pkill -f "$work" 2>/dev/null || true; sleep 1; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

echo "== installing Bugsink from PyPI"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "bugsink>=2,<3"
bin=$work/venv/bin
(cd "$work" && "$bin/bugsink-create-conf" --template=singleserver --host=127.0.0.1 \
  --port="$port" --base-dir="$work/data" -o bugsink_conf.py >/dev/null)
cat >> "$work/bugsink_conf.py" <<CONF
BUGSINK["BASE_URL"] = "http://127.0.0.1:$port"
BUGSINK["PHONEHOME"] = False
for quota in ("MAX_EVENTS_PER_PROJECT_PER_5_MINUTES", "MAX_EVENTS_PER_PROJECT_PER_HOUR",
              "MAX_EVENTS_PER_PROJECT_PER_MONTH", "MAX_EVENTS_PER_5_MINUTES",
              "MAX_EVENTS_PER_HOUR", "MAX_EVENTS_PER_MONTH"):
    BUGSINK[quota] = 1_000_000_000
SNAPPEA["TASK_ALWAYS_EAGER"] = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
CONF
export PYTHONPATH=$work DJANGO_SETTINGS_MODULE=bugsink_conf
mkdir -p "$work/data"
"$bin/bugsink-manage" migrate --verbosity 0
"$bin/bugsink-manage" migrate snappea --database=snappea --verbosity 0
dsn=$("$bin/bugsink-manage" shell -c "
from django.contrib.auth import get_user_model
from teams.models import Team
from projects.models import Project
get_user_model().objects.create_superuser('bench', 'bench@example.com', 'bench-password')
team = Team.objects.create(name='bench')
print(Project.objects.create(team=team, name='bench', slug='bench').dsn)
" | tail -1)
(cd "$work" && exec "$bin/gunicorn" --workers=2 --bind "127.0.0.1:$port" bugsink.wsgi >"$work/gunicorn.log" 2>&1) &
(cd "$work" && exec "$bin/bugsink-runsnappea" >"$work/snappea.log" 2>&1) &
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
  sleep 0.3
done
count() {
  "$bin/bugsink-manage" shell -c "from events.models import Event; print(Event.objects.count())" | tail -1
}

echo "== loading Bugsink ($dsn) for $seconds s"
start=$(date +%s.%N)
PICKET_LOAD_TARGET="http://127.0.0.1:$port" PICKET_LOAD_DSN="$dsn" PICKET_LOAD_SECONDS=$seconds \
  cargo bench --bench ingest 2>&1 | grep -E "^(replaying|target|first refusal)"
# Wait for its backlog to drain: the count stops moving.
last=-1
while true; do
  now_count=$(count)
  [ "$now_count" = "$last" ] && break
  last=$now_count
  sleep 5
done
end=$(date +%s.%N)
bugsink_rate=$(python3 -c "print(round($last / ($end - $start - 5), 1))")
echo "bugsink: $last events digested in $(python3 -c "print(round($end - $start - 5))") s including the drain: $bugsink_rate events/s"

echo "== loading picket for $seconds s"
picket_line=$(PICKET_LOAD_SECONDS=$seconds PICKET_LOAD_RUNS=1 cargo bench --bench ingest 2>/dev/null | grep "^median")
echo "picket: $picket_line"
picket_rate=$(echo "$picket_line" | sed -E 's/^median of [0-9]+: ([0-9]+) events.*/\1/')
echo "picket / bugsink (fully processed events/s): $(python3 -c "print(round($picket_rate / max($bugsink_rate, 0.001)))")x"
