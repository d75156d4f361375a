#!/usr/bin/env bash
# What the probe costs, counted: CPU instructions per request of a trivial `async def` route on a
# real uvicorn, without and with the probe, by valgrind's callgrind. Instruction counts do not
# depend on what else the machine is doing, so this is the repeatable side of `make bench`
# (which measures time, side by side). Counting starts after 50 warm-up requests. Counted on the
# asyncio loop with h11 (every loop step timed) and on uvloop with httptools, as
# `uvicorn[standard]` runs in production (every task step timed). The hash seed is fixed, so that
# dict layouts (and their probing) are the same from run to run. callgrind also simulates the
# caches and branch predictors: the probe's code is cold and branchy next to the interpreter's
# hot loop, so its share of first-level instruction-cache misses and mispredicted branches is
# larger than its share of instructions, which is why `make bench` measures more time than this
# count suggests.
#
#   benchmarks/probe_instructions.sh [REQUESTS]        (default 1500; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-1500}
python=.venv/bin/python
work=${KEEP:-$(mktemp -d)}
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

client() { # PORT COUNT: keep-alive GETs of / with the standard library only
    "$python" - "$1" "$2" <<'PY'
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=600)
for _ in range(int(sys.argv[2])):
    connection.request("GET", "/")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
PY
}

count() { # NAME PROBE(0|1) LOOP HTTP: prints instructions, I1 misses, D1 misses, mispredicts per request
    local name=$1 probe=$2 loop=$3 http=$4 port
    port=$("$python" -c "from loopscope.server.ports import free_port; print(free_port())")
    local env=(LOOPSCOPE_APP=trivial:app LOOPSCOPE_APP_DIR="$PWD/benchmarks/apps" LOOPSCOPE_LOOP="$loop")
    if [ "$probe" = 1 ]; then
        mkdir -p "$work/probe"
        # A threshold of 2 s keeps the watchdog's ticks (by the wall clock, which valgrind
        # slows 50-fold) from weighing on the count; its cost is in `make bench`. So do no
        # checkpoints: taken every half second of the wall clock, they added ±2,000
        # instructions per request from run to run (`make bench` measures their cost).
        env+=(LOOPSCOPE_PROBE_OUT="$work/probe" LOOPSCOPE_BLOCK_MS=2000 LOOPSCOPE_CHECKPOINT_S=0)
    fi
    env "${env[@]}" PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \
        --cache-sim=yes --branch-sim=yes \
        --callgrind-out-file="$work/$name.out" "$python" -m uvicorn loopscope.server.target:app \
        --host 127.0.0.1 --port "$port" --loop "$loop" --http "$http" --log-level warning \
        >"$work/$name.log" 2>&1 &
    local server=$!
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.5
    done
    client "$port" 50
    callgrind_control -i on "$server" >/dev/null 2>&1
    client "$port" "$requests"
    callgrind_control -d measured "$server" >/dev/null 2>&1
    callgrind_control -i off "$server" >/dev/null 2>&1
    kill -TERM "$server"
    wait "$server" || true
    # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim (the dump with most Ir)
    cat "$work/$name.out"* | grep -h "^totals:" | sort -k2 -n | tail -1 |
        awk -v n="$requests" '{ printf "%d %d %d %d\n", $2 / n, $5 / n, ($6 + $7) / n, ($12 + $14) / n }'
}

command -v valgrind >/dev/null || { echo "valgrind is not installed: apt-get install valgrind"; exit 1; }
echo "probe instructions: trivial async route, $requests keep-alive requests (callgrind)"
hooks=$("$python" -c "from loopscope.probe.backend import is_compiled, load_backend; print('C' if is_compiled(load_backend()) else 'pure Python')")
for setup in "asyncio h11" "uvloop httptools"; do
    read -r loop http <<<"$setup"
    read -r plain plain_i1 plain_d1 plain_br <<<"$(count "plain-$loop" 0 "$loop" "$http")"
    read -r probed probed_i1 probed_d1 probed_br <<<"$(count "probed-$loop" 1 "$loop" "$http")"
    echo "$loop ($http):"
    echo "  without the probe: $plain instructions per request"
    echo "  with the probe:    $probed instructions per request (hot paths in $hooks)"
    share=$(awk -v a="$plain" -v b="$probed" 'BEGIN { printf "%.1f%%", (b - a) * 100 / a }')
    echo "  added by the probe: $((probed - plain)) ($share)"
    for what in "first-level instruction-cache misses:$plain_i1:$probed_i1" \
        "first-level data-cache misses:$plain_d1:$probed_d1" \
        "mispredicted branches:$plain_br:$probed_br"; do
        IFS=: read -r label a b <<<"$what"
        awk -v l="$label" -v a="$a" -v b="$b" \
            'BEGIN { printf "  %s: %d -> %d per request (+%.1f%%)\n", l, a, b, (b - a) * 100 / a }'
    done
done
