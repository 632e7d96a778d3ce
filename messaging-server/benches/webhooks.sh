#!/usr/bin/env bash
# Webhook benchmark: Twilio status callbacks, each with a valid X-Twilio-Signature and a
# distinct (MessageSid, status) — so each is checked and written durably — against a release
# server on loopback, driven by wrk; `/healthz` in the same run is the ceiling. It runs on
# SQLite, then on PostgreSQL (a fresh database on the server BENCH_POSTGRES_URL names,
# dropped afterwards; psql must reach it).
#
#   bash messaging-server/benches/webhooks.sh            # 10 s per measurement, both backends
#   DURATION=5 CONNECTIONS=32 BACKENDS=sqlite bash messaging-server/benches/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

duration="${DURATION:-10}"
connections="${CONNECTIONS:-64}"
threads="${THREADS:-2}"
requests="${REQUESTS:-600000}"
port="${PORT:-5093}"
target="${CARGO_TARGET_DIR:-target}"
token="bench-auth-token"
backends="${BACKENDS:-sqlite postgres}"
postgres_url="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
scratch="bench_webhooks_$$"

command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
cargo build --release -p messaging-server --quiet

dir="$(mktemp -d)"
cleanup() {
    kill "${server:-0}" 2>/dev/null || true
    wait "${server:-0}" 2>/dev/null || true
    psql -q "$postgres_url" -c "DROP DATABASE IF EXISTS $scratch" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# Signed bodies, generated ahead so the load tool only replays them.
python3 - "$dir/requests.tsv" "$requests" "$port" "$token" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
path, count, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
url = f"http://127.0.0.1:{port}/twilio/status"
statuses = ["sent", "delivered", "read"]
with open(path, "w") as out:
    for i in range(count):
        params = {
            "AccountSid": "AC00000000000000000000000000000000",
            "MessageSid": "SM%032x" % (i // 3),
            "MessageStatus": statuses[i % 3],
            "To": "whatsapp:+94771234567",
            "From": "whatsapp:+14155550100",
            "ApiVersion": "2010-04-01",
        }
        signed = url + "".join(k + params[k] for k in sorted(params))
        signature = base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
        out.write(signature + "\t" + urllib.parse.urlencode(params) + "\n")
PY

# replay-first.lua plays the first half of the requests; replay-second.lua the second half, so the
# run during the import writes new receipts too, not repeats answered from what is stored.
for half in first second; do
start=0; [ "$half" = second ] && start=$((requests / 2))
cat >"$dir/replay-$half.lua" <<LUA
local requests = {}
for line in io.lines("$dir/requests.tsv") do
  local signature, body = line:match("([^\t]+)\t(.+)")
  requests[#requests + 1] = { signature, body }
end
local counter = 0
local stride = 1
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end
function init(args)
  stride = $threads
  index = offset + $start
end
function request()
  index = index + stride
  local r = requests[(index % #requests) + 1]
  return wrk.format("POST", "/twilio/status", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = r[1],
  }, r[2])
end
LUA
done

summary() { # name, wrk output
    local rps p50 p99
    rps=$(grep "Requests/sec" <<<"$2" | awk '{print $2}')
    p50=$(grep -E "^ +50%" <<<"$2" | awk '{print $2}')
    p99=$(grep -E "^ +99%" <<<"$2" | awk '{print $2}')
    printf '%-44s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99"
    errors=$(grep -E "Non-2xx|Socket errors" <<<"$2" || true)
    [ -z "$errors" ] || echo "    $errors"
}

# Users for the import that runs beside the webhooks (see below), written once, when first
# needed: after the first quiet measurement, whose disk it would otherwise share.
users_csv() {
    [ -f "$dir/users.csv" ] && return
    python3 -c 'import sys
with open(sys.argv[1], "w") as out:
    out.write("phone,name,city\n")
    for i in range(1_000_000):
        out.write(f"+9477{i:07},User {i},Colombo\n")' "$dir/users.csv"
    sync
}

receipts_stored() {
    case "$database_url" in
        sqlite://*) python3 -c "import sqlite3; print(sqlite3.connect('$dir/bench.db').execute('select count(*) from receipts').fetchone()[0])" ;;
        *) psql -qtA "$database_url" -c "SELECT count(*) FROM receipts" ;;
    esac
}

for backend in $backends; do
    case "$backend" in
        sqlite) database_url="sqlite://$dir/bench.db" ;;
        postgres)
            psql -q "$postgres_url" -c "DROP DATABASE IF EXISTS $scratch" -c "CREATE DATABASE $scratch"
            database_url="${postgres_url%/*}/$scratch" ;;
        *) echo "unknown backend $backend (sqlite, postgres)" >&2; exit 2 ;;
    esac
    echo "--- $backend"
    DATABASE_URL="$database_url" BIND="127.0.0.1:$port" PUBLIC_URL="http://127.0.0.1:$port" \
    TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 TWILIO_AUTH_TOKEN="$token" \
    TWILIO_WHATSAPP_NUMBER=whatsapp:+14155550100 TWILIO_API_BASE=http://127.0.0.1:9 RUST_LOG=error \
        "$target/release/messaging-server" serve >"$dir/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
        sleep 0.1
    done

    sync  # what earlier steps wrote goes to disk now, not during the measurements
    ceiling=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "http://127.0.0.1:$port/healthz")
    summary "ceiling: GET /healthz" "$ceiling"
    webhooks=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$dir/replay-first.lua" "http://127.0.0.1:$port/twilio/status")
    summary "POST /twilio/status (signed, durable)" "$webhooks"

    # The same while a 1,000,000-row import streams into the same database: webhooks must not
    # wait behind the import's writes (it writes in small bulk transactions that let them first).
    users_csv
    import_started=$(date +%s.%N)
    curl -s -o "$dir/import.json" -X POST "http://127.0.0.1:$port/api/v1/ingestions/users" \
         -H 'content-type: text/csv' --data-binary @"$dir/users.csv" &
    importing=$!
    during=$(wrk -t"$threads" -c"$connections" -d"${IMPORT_DURATION:-3}s" --latency -s "$dir/replay-second.lua" "http://127.0.0.1:$port/twilio/status")
    summary "POST /twilio/status during a 1M-row import" "$during"
    wait "$importing"
    import_seconds=$(python3 -c "import time; print(round(time.time() - $import_started, 2))")
    python3 -c "import json,sys; r=json.load(open('$dir/import.json'))['report']; print('import: %d rows, %d inserted, in $import_seconds s (the webhooks ran during its first ${IMPORT_DURATION:-3} s)' % (r['total'], r['inserted']))"
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
    echo "server peak RSS: $((rss / 1024)) MB; receipts stored: $(receipts_stored)"
    kill "$server"; wait "$server" 2>/dev/null || true
done
