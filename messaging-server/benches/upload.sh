#!/usr/bin/env bash
# Upload benchmark: N users as CSV through `POST /api/v1/ingestions/users` (streamed), against
# the command line's `ingest users` on the same file in the same run, with the server's peak
# memory before and after.
#
#   bash messaging-server/benches/upload.sh              # 1,000,000 users
#   USERS=200000 bash messaging-server/benches/upload.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

users="${USERS:-1000000}"
port="${PORT:-5094}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p messaging-server --quiet
binary="$target/release/messaging-server"

dir="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT

python3 - "$dir/users.csv" "$users" <<'PY'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
cities = ["Colombo", "Kandy", "Galle", "Jaffna", "Negombo", "Matara", "Kurunegala", "Badulla"]
order = list(range(n))
random.Random(7).shuffle(order)
with open(path, "w") as out:
    out.write("phone,name,consent_state,attributes,timezone\n")
    for i in order:
        attributes = json.dumps({"city": cities[i % 8], "age": 18 + i % 60, "vip": i % 10 == 0})
        out.write(f'+9477{i:07d},User {i},OPT_IN,"{attributes.replace(chr(34), chr(34) * 2)}",Asia/Colombo\n')
PY
size=$(($(stat -c %s "$dir/users.csv") / 1024 / 1024))

start=$(date +%s.%N)
DATABASE_URL="sqlite://$dir/cli.db" "$binary" ingest users "$dir/users.csv" >/dev/null
cli=$(python3 -c "print($(date +%s.%N) - $start)")

DATABASE_URL="sqlite://$dir/api.db" BIND="127.0.0.1:$port" RUST_LOG=error "$binary" serve >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
    sleep 0.1
done
before=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
start=$(date +%s.%N)
curl -sf -X POST "http://127.0.0.1:$port/api/v1/ingestions/users" -H 'content-type: text/csv' \
    --data-binary @"$dir/users.csv" -o "$dir/report.json"
api=$(python3 -c "print($(date +%s.%N) - $start)")
after=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
inserted=$(python3 -c "import json; print(json.load(open('$dir/report.json'))['report']['inserted'])")

printf 'file: %d users, %d MB of CSV\n' "$users" "$size"
printf 'command line  ingest users:        %6.2f s  %9.0f rows/s\n' "$cli" "$(python3 -c "print($users / $cli)")"
printf 'HTTP upload   POST ingestions/users: %6.2f s  %9.0f rows/s  (%.0f %% of the command line; %s inserted)\n' \
    "$api" "$(python3 -c "print($users / $api)")" "$(python3 -c "print(100 * $cli / $api)")" "$inserted"
printf 'server peak RSS: %d MB before the upload, %d MB after\n' "$((before / 1024))" "$((after / 1024))"
