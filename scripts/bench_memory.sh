#!/usr/bin/env bash
# Memory benchmark: peak RSS of `llm-bench run` after N requests against the in-process
# simulator at fast settings (no prefill/decode delay, 4 tokens per answer). Memory must stay
# flat as N grows: aggregates are HDR histograms and the raw log is streamed to disk.
#
#   scripts/bench_memory.sh [N ...]        default: 10000 200000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 200000)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-10s %-12s %-10s %-10s\n' requests peak_rss_mb wall_s req_per_s
for n in "${counts[@]}"; do
  cat > "$work/scenario.yaml" <<YAML
name: memory-bench
target: {model: m, timeout: 30s}
prompts: [hello]
scenarios:
  flood: {executor: constant-vus, vus: 32, iterations: $n}
simulator:
  parallel: 64
  prefill_per_token: 0s
  decode_per_token: 0s
  load_time: 0s
  output_tokens: {min: 4, max: 4}
YAML
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" target/release/llm-bench run "$work/scenario.yaml" \
    --quiet --raw --output-dir "$work/results" > "$work/stdout"
  end=$(date +%s.%N)
  done_requests=$(grep -o '"requests": [0-9]*' "$work/results/benchmark_latest.json" | tail -1 | grep -o '[0-9]*')
  [ "$done_requests" = "$n" ] || { echo "expected $n requests, result has $done_requests" >&2; exit 1; }
  rss_kb=$(cat "$work/rss")
  awk -v n="$n" -v kb="$rss_kb" -v s="$start" -v e="$end" \
    'BEGIN { w = e - s; printf "%-10d %-12.1f %-10.1f %-10.0f\n", n, kb / 1024, w, n / w }'
  rm -rf "$work/results"
done
