#!/usr/bin/env bash
# Overhead benchmark: what llm-bench adds to the latencies it reports, measured against the
# simulator's own send times in the same run (GET /sim/stats), never against expectations.
#
# The simulator runs as its own process with fixed timing: the first chunk 50 ms after the
# request, then one chunk every 10 ms, 64 chunks, unlimited slots. For each concurrency it runs
# `constant-vus` for DURATION and prints one row: concurrency held (the simulator's high-water
# mark), requests/s against the ideal (c / the server's mean e2e: tokio's sleeps make its 10 ms
# gaps about 11 ms, so the truth is measured, not assumed), TTFT, ITL and e2e p50/p99 minus
# the truth, client CPU seconds per 1,000 output tokens (user+sys) and peak RSS.
#
#   scripts/bench_overhead.sh [C ...]                 default: 1 100 1000
#   DURATION=15s BACKEND=openai scripts/bench_overhead.sh 100
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
max_delta="${MAX_P50_DELTA_MS:-}"
bin=target/release/llm-bench
client="${CLIENT:-$bin}"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$bin" sim --listen "127.0.0.1:$port" --parallel 1000000 --prefill-per-token 0s --load-time 0s \
  --first-token-delay 50ms --decode-per-token 10ms --output-tokens 64 2> "$work/sim.log" &
sim=$!
trap 'kill "$sim" 2>/dev/null || true; rm -rf "$work"' EXIT
# GET or POST a simulator path (python's urllib: no curl needed).
http() {
  python3 -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(u.Request(sys.argv[1], method=sys.argv[2], data=b"" if sys.argv[2] == "POST" else None), timeout=10).read().decode())' "$url$2" "$1"
}
for _ in $(seq 50); do http GET /sim/stats > /dev/null 2>&1 && break; sleep 0.1; done
printf '%-6s %-6s %-15s %-17s %-11s %-17s %-14s %-8s\n' \
  c held "req/s (ideal)" "TTFT p50/p99 +ms" "ITL p50 +ms" "e2e p50/p99 +ms" "CPU s/1k tok" "RSS MB"
status=0
for c in "${levels[@]}"; do
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
  python3 - "$c" "$work/results/benchmark_latest.json" "$work/truth.json" "$work/time" "$max_delta" <<'PY' || status=1
import json, sys
c, result, truth, timing, max_delta = sys.argv[1:6]
c = int(c)
r = json.load(open(result))["total"]
t = json.load(open(truth))
user, sys_, rss_kb = open(timing).read().split()
cpu = float(user) + float(sys_)
# Ideal: every VU always has a request in flight, each taking as long as the server took.
ideal = c / (t["e2e_ms"]["mean"] / 1000)
d = lambda name, key, q: r[name][q] - t[key][q]
tokens = max(r["output_tokens_total"], 1)
print(f'{c:<6} {t["max_in_flight"]:<6} {r["requests_per_second"]:7.1f} ({100 * r["requests_per_second"] / ideal:3.0f}%) '
      f'{d("ttft_ms", "ttft_ms", "p50"):+7.2f}/{d("ttft_ms", "ttft_ms", "p99"):+7.2f}  '
      f'{d("itl_ms", "itl_ms", "p50"):+9.3f}  '
      f'{d("e2e_latency_ms", "e2e_ms", "p50"):+7.2f}/{d("e2e_latency_ms", "e2e_ms", "p99"):+7.2f}  '
      f'{1000 * cpu / tokens:12.4f}  {int(rss_kb) / 1024:6.1f}')
if max_delta:
    worst = max(abs(d("ttft_ms", "ttft_ms", "p50")), abs(d("e2e_latency_ms", "e2e_ms", "p50")))
    if worst > float(max_delta):
        print(f"p50 {worst:.2f} ms from the truth, more than {max_delta}", file=sys.stderr)
        sys.exit(1)
PY
done
exit $status
