#!/usr/bin/env bash
# Dispatch-precision benchmark for open-model executors: schedule_lag (actual send − intended
# start) at thousands of arrivals per second against the in-process simulator at fast settings
# (no model delay, 4 tokens per answer, 512 slots), release build, precise pacing as in real runs.
#
#   scripts/bench_dispatch.sh [RATE ...]        default: 1000 3000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(1000 3000)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-8s %-8s %-9s %-9s %-9s %-9s %-9s %-9s %-8s\n' rate arrivals sent/s lag_p50 lag_p90 lag_p99 lag_p99.9 lag_max dropped
for rate in "${rates[@]}"; do
  for arrivals in uniform poisson; do
    cat > "$work/scenario.yaml" <<YAML
name: dispatch-bench
target: {model: m, timeout: 30s}
prompts: [hi]
scenarios:
  open: {executor: constant-arrival-rate, rate: $rate, duration: 10s, max_vus: 512, arrivals: $arrivals}
simulator: {parallel: 512, prefill_per_token: 0s, decode_per_token: 0s, load_time: 0s, output_tokens: {min: 4, max: 4}}
YAML
    target/release/llm-bench run "$work/scenario.yaml" --quiet --output-dir "$work/results" > /dev/null
    python3 - "$work/results/benchmark_latest.json" "$rate" "$arrivals" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["total"]
lag = r["schedule_lag_ms"]
us = lambda ms: f"{ms * 1000:.0f}us"
print(f"{sys.argv[2]:<8} {sys.argv[3]:<8} {r['requests_per_second']:<9.0f} {us(lag['p50']):<9} {us(lag['p90']):<9} {us(lag['p99']):<9} {us(lag['p99_9']):<9} {us(lag['max']):<9} {r['dropped_iterations']:<8}")
PY
    rm -rf "$work/results"
  done
done
