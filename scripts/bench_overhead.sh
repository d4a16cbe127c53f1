#!/usr/bin/env bash
# Overhead benchmark: what llm-bench adds to the latencies it reports, measured against the
# simulator's own send times in the same run (GET /sim/stats), never against expectations.
#
# The simulator runs as its own process with fixed timing: the first chunk 50 ms after the
# request, then one chunk every GAP (10 ms), 64 chunks, unlimited slots. For each concurrency it
# runs `constant-vus` for DURATION and prints one row: concurrency held (the simulator's
# high-water mark), requests/s against the ideal (c / the server's mean e2e: tokio's sleeps make
# its 10 ms gaps about 11 ms, so the truth is measured, not assumed), TTFT, ITL and e2e p50/p99
# minus the truth, client CPU seconds per 1,000 output tokens (user+sys) and peak RSS.
# Before each llm-bench row, the yardstick (examples/minimal_client.rs: raw sockets, no HTTP
# library, no JSON parsing) runs the same load against the same simulator: its row is what the
# machine allows, so llm-bench's distance from the truth can be read against it.
#
#   scripts/bench_overhead.sh [C ...]                 default: 1 100 1000
#   DURATION=15s BACKEND=openai scripts/bench_overhead.sh 100
#   GAP=50ms scripts/bench_overhead.sh 5000           one chunk every 50 ms
#   CONTEND=2 scripts/bench_overhead.sh 1000          two busy loops at nice 19 during the runs
#   YARDSTICK=0 scripts/bench_overhead.sh             llm-bench rows only
#   MAX_P50_DELTA_MS=20 scripts/bench_overhead.sh 10  exit 1 if a p50 is further from the truth
#   CLIENT=/path/to/other/llm-bench scripts/bench_overhead.sh   measure another build (before and
#                                                    after a change) against this simulator
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(1 100 1000)
duration="${DURATION:-15s}"
backend="${BACKEND:-openai}"
gap="${GAP:-10ms}"
yardstick="${YARDSTICK:-1}"
max_delta="${MAX_P50_DELTA_MS:-}"
bin=target/release/llm-bench
client="${CLIENT:-$bin}"
if [ "$yardstick" = 1 ]; then
  [ "$backend" = openai ] || { echo "the yardstick speaks OpenAI chat: YARDSTICK=0 for $backend" >&2; exit 2; }
  cargo build --release --quiet --example minimal_client
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$bin" sim --listen "127.0.0.1:$port" --parallel 1000000 --prefill-per-token 0s --load-time 0s \
  --first-token-delay 50ms --decode-per-token "$gap" --output-tokens 64 2> "$work/sim.log" &
sim=$!
busy=()
for _ in $(seq "${CONTEND:-0}"); do
  nice -n 19 sh -c 'while :; do :; done' &
  busy+=($!)
done
trap 'kill "$sim" ${busy[@]+"${busy[@]}"} 2>/dev/null || true; rm -rf "$work"' EXIT
# GET or POST a simulator path (python's urllib: no curl needed).
http() {
  python3 -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(u.Request(sys.argv[1], method=sys.argv[2], data=b"" if sys.argv[2] == "POST" else None), timeout=10).read().decode())' "$url$2" "$1"
}
for _ in $(seq 50); do http GET /sim/stats > /dev/null 2>&1 && break; sleep 0.1; done
printf '%-9s %-6s %-6s %-15s %-17s %-11s %-17s %-14s %-8s\n' \
  client c held "req/s (ideal)" "TTFT p50/p99 +ms" "ITL p50 +ms" "e2e p50/p99 +ms" "CPU s/1k tok" "RSS MB"
status=0
# One table row: LABEL C RESULT TRUTH TIME, RESULT being llm-bench's result or the yardstick's.
row() {
  python3 - "$@" "$max_delta" <<'PY'
import json, sys
label, c, result, truth, timing, max_delta = sys.argv[1:7]
c = int(c)
r = json.load(open(result))
r = r.get("total", r)
r.setdefault("e2e_ms", r.get("e2e_latency_ms"))
t = json.load(open(truth))
user, sys_, rss_kb = open(timing).read().split()
cpu = float(user) + float(sys_)
# Ideal: every VU always has a request in flight, each taking as long as the server took.
ideal = c / (t["e2e_ms"]["mean"] / 1000)
d = lambda key, q: r[key][q] - t[key][q]
tokens = max(r["output_tokens_total"], 1)
print(f'{label:<9} {c:<6} {t["max_in_flight"]:<6} {r["requests_per_second"]:7.1f} ({100 * r["requests_per_second"] / ideal:3.0f}%) '
      f'{d("ttft_ms", "p50"):+7.2f}/{d("ttft_ms", "p99"):+7.2f}  '
      f'{d("itl_ms", "p50"):+9.3f}  '
      f'{d("e2e_ms", "p50"):+7.2f}/{d("e2e_ms", "p99"):+7.2f}  '
      f'{1000 * cpu / tokens:12.4f}  {int(rss_kb) / 1024:6.1f}')
if max_delta and label == "llm-bench":
    worst = max(abs(d("ttft_ms", "p50")), abs(d("e2e_ms", "p50")))
    if worst > float(max_delta):
        print(f"p50 {worst:.2f} ms from the truth, more than {max_delta}", file=sys.stderr)
        sys.exit(1)
PY
}
for c in "${levels[@]}"; do
  if [ "$yardstick" = 1 ]; then
    http POST /sim/reset > /dev/null
    /usr/bin/time -f '%U %S %M' -o "$work/time" target/release/examples/minimal_client \
      "127.0.0.1:$port" "$c" "${duration%s}" > "$work/minimal.json"
    http GET /sim/stats > "$work/truth.json"
    row minimal "$c" "$work/minimal.json" "$work/truth.json" "$work/time" || status=1
  fi
  cat > "$work/s.yaml" <<YAML
name: overhead-c$c
target: {backend: $backend, model: "llm-bench-sim:latest", timeout: 60s}
prompts: [hello]
scenarios:
  steady: {executor: constant-vus, vus: $c, duration: $duration}
YAML
  http POST /sim/reset > /dev/null
  /usr/bin/time -f '%U %S %M' -o "$work/time" "$client" run "$work/s.yaml" --target-url "$url" \
    --quiet --output-dir "$work/results" > /dev/null
  http GET /sim/stats > "$work/truth.json"
  row llm-bench "$c" "$work/results/benchmark_latest.json" "$work/truth.json" "$work/time" || status=1
done
exit $status
