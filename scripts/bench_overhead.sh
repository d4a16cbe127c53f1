#!/usr/bin/env bash
# Overhead benchmark: what llm-bench adds to the latencies it reports, measured against the
# server's own send times in the same run, never against expectations, on several server
# shapes, most of them written independently of llm-bench:
#
#   sim       llm-bench's own simulator (axum, `llm-bench sim`), OpenAI SSE
#   axum      examples/truth_axum.rs: axum, body fed from a channel of capacity 8, one chunk per event
#   raw       examples/truth_raw.rs: hand-written HTTP/1.1, TCP_NODELAY, one write() per event
#   coalesce  truth_raw --coalesce 4 --late-ms 30: four events per write, the chunked
#             terminator 30 ms after [DONE]
#   ndjson    truth_axum --ndjson: Ollama /api/chat NDJSON (llm-bench's ollama backend)
#   aiohttp   scripts/truth_aiohttp.py: Python aiohttp (vLLM's stack is Python asyncio)
#
# Every server follows one schedule from each request's arrival: the first event 50 ms after
# it, then one every GAP (10 ms), 64 events, unlimited slots, and records when it handed each
# event to its connection. For each server and level it runs, against that same server process:
# the yardstick (examples/minimal_client.rs: raw sockets, no HTTP library, no JSON parsing),
# then llm-bench (`constant-vus` for DURATION), and prints one row each: streams held (the
# server's high-water mark), requests/s against the ideal (c / the server's mean e2e), TTFT and
# e2e p50/p99 minus the truth, ITL p50 minus the truth, client CPU seconds per 1,000 output
# tokens (user+sys), and peak RSS. The yardstick's row is what the machine allows: llm-bench's
# distance from the truth is read against it.
#
#   scripts/bench_overhead.sh [LEVEL ...]          LEVEL: C or C@GAP; default 100 1000 5000@50ms
#   SERVERS="sim axum" scripts/bench_overhead.sh 10
#   DURATION=15s scripts/bench_overhead.sh 1000
#   CONTEND=2 scripts/bench_overhead.sh 1000       two busy loops at nice 19 during the runs
#   YARDSTICK=0 scripts/bench_overhead.sh          llm-bench rows only
#   MAX_P50_DELTA_MS=20 ...                        exit 1 if an llm-bench p50 is further from the truth
#   MAX_EXCESS_MS=2 ...                            exit 1 if an llm-bench TTFT/e2e p50 or p99 error
#                                                  exceeds the yardstick's own error by more than this
#   CLIENT=/path/to/other/llm-bench ...            measure another build (before/after a change)
#   CLIENT="/path/before/llm-bench target/release/llm-bench" REPEAT=4 ...
#                                                  several builds, interleaved with the yardstick
#                                                  on one server process, each repeated; ends
#                                                  with each build's median CPU ratio and errors
#                                                  (a shared machine's noise between single runs
#                                                  is larger than most changes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo build --release --quiet --example minimal_client --example truth_axum --example truth_raw
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(100 1000 5000@50ms)
servers="${SERVERS:-sim axum raw coalesce ndjson aiohttp}"
duration="${DURATION:-10s}"
yardstick="${YARDSTICK:-1}"
max_delta="${MAX_P50_DELTA_MS:-}"
max_excess="${MAX_EXCESS_MS:-}"
bin=target/release/llm-bench
read -r -a clients <<< "${CLIENT:-$bin}"
repeat="${REPEAT:-1}"
case " $servers " in
  *" aiohttp "*) python3 -c 'import aiohttp' 2>/dev/null || python3 -m pip install --quiet aiohttp ;;
esac
work=$(mktemp -d)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
server_pid=
busy=()
for _ in $(seq "${CONTEND:-0}"); do
  nice -n 19 sh -c 'while :; do :; done' &
  busy+=($!)
done
stop_server() { [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=; }; }
trap 'stop_server; kill ${busy[@]+"${busy[@]}"} 2>/dev/null || true; rm -rf "$work"' EXIT
# GET or POST a path of the server (python's urllib: no curl needed).
http() {
  python3 -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(u.Request(sys.argv[1], method=sys.argv[2], data=b"" if sys.argv[2] == "POST" else None), timeout=10).read().decode())' "$url$2" "$1"
}
# Starts SERVER with chunks GAP ms apart on a free port; sets url, truth, reset, backend.
start_server() {
  local name=$1 gap_ms=$2
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url="http://127.0.0.1:$port"
  truth=/truth reset=/reset backend=openai
  local sched=(--listen "127.0.0.1:$port" --first-ms 50 --gap-ms "$gap_ms" --events 64)
  case "$name" in
    sim)
      truth=/sim/stats reset=/sim/reset
      "$bin" sim --listen "127.0.0.1:$port" --parallel 1000000 --prefill-per-token 0s --load-time 0s \
        --first-token-delay 50ms --decode-per-token "${gap_ms}ms" --output-tokens 64 2> "$work/server.log" & ;;
    axum) target/release/examples/truth_axum "${sched[@]}" > "$work/server.log" 2>&1 & ;;
    ndjson) backend=ollama; target/release/examples/truth_axum --ndjson "${sched[@]}" > "$work/server.log" 2>&1 & ;;
    raw) target/release/examples/truth_raw "${sched[@]}" > "$work/server.log" 2>&1 & ;;
    coalesce) target/release/examples/truth_raw --coalesce 4 --late-ms 30 "${sched[@]}" > "$work/server.log" 2>&1 & ;;
    aiohttp) python3 scripts/truth_aiohttp.py "${sched[@]}" > "$work/server.log" 2>&1 & ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
  esac
  server_pid=$!
  for _ in $(seq 100); do http GET "$truth" > /dev/null 2>&1 && return; sleep 0.1; done
  echo "server $name did not start:" >&2; cat "$work/server.log" >&2; exit 1
}
printf '%-9s %-9s %-5s %-5s %-15s %-17s %-11s %-17s %-12s %-6s\n' \
  server client c held "req/s (ideal)" "TTFT p50/p99 +ms" "ITL p50 +ms" "e2e p50/p99 +ms" "CPU s/1k tok" "RSS MB"
status=0
# One table row: SERVER LABEL C RESULT TRUTH TIME; leaves the row's figures in $work/LABEL.json.
row() {
  python3 - "$@" "$max_delta" "$max_excess" "$work" <<'PY'
import json, os, sys
server, label, c, result, truth, timing, max_delta, max_excess, work = sys.argv[1:10]
c = int(c)
r = json.load(open(result))
r = r.get("total", r)
r.setdefault("e2e_ms", r.get("e2e_latency_ms"))
t = json.load(open(truth))
user, sys_, rss_kb = open(timing).read().split()
cpu = float(user) + float(sys_)
ideal = c / (t["e2e_ms"]["mean"] / 1000)
d = lambda key, q: r[key][q] - t[key][q]
tokens = max(r["output_tokens_total"], 1)
figures = {"ttft_p50": d("ttft_ms", "p50"), "ttft_p99": d("ttft_ms", "p99"),
           "e2e_p50": d("e2e_ms", "p50"), "e2e_p99": d("e2e_ms", "p99"),
           "rps": r["requests_per_second"], "cpu": 1000 * cpu / tokens}
json.dump(figures, open(os.path.join(work, label + ".json"), "w"))
print(f'{server:<9} {label:<9} {c:<5} {t["max_in_flight"]:<5} {r["requests_per_second"]:7.1f} ({100 * r["requests_per_second"] / ideal:3.0f}%) '
      f'{figures["ttft_p50"]:+7.2f}/{figures["ttft_p99"]:+7.2f}  '
      f'{d("itl_ms", "p50"):+9.3f}  '
      f'{figures["e2e_p50"]:+7.2f}/{figures["e2e_p99"]:+7.2f}  '
      f'{figures["cpu"]:12.4f}  {int(rss_kb) / 1024:6.1f}')
failed = False
is_client = label != "minimal"
if max_delta and is_client:
    worst = max(abs(figures["ttft_p50"]), abs(figures["e2e_p50"]))
    if worst > float(max_delta):
        print(f"  p50 {worst:.2f} ms from the truth, more than {max_delta}", file=sys.stderr)
        failed = True
reference = os.path.join(work, "minimal.json")
if is_client and os.path.exists(reference):
    m = json.load(open(reference))
    with open(os.path.join(work, "pairs.jsonl"), "a") as pairs:
        pairs.write(json.dumps({"server": server, "c": c, "client": label, "cpu": figures["cpu"] / max(m["cpu"], 1e-9),
                                **{k: figures[k] - m[k] for k in ("ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99")}}) + "\n")
    print(f'{"":<9} {"vs":<9} {"":<5} {"":<5} {100 * figures["rps"] / max(m["rps"], 1e-9):6.0f}% of it  '
          + "  ".join(f'{k} {figures[k] - m[k]:+.2f}' for k in ("ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99"))
          + f'  CPU {figures["cpu"] / max(m["cpu"], 1e-9):.2f}x')
    if max_excess:
        over = [k for k in ("ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99")
                if figures[k] - m[k] > float(max_excess)]
        if over:
            print(f"  {', '.join(over)} beyond the yardstick's error + {max_excess} ms", file=sys.stderr)
            failed = True
sys.exit(1 if failed else 0)
PY
}
for level in "${levels[@]}"; do
  c=${level%@*}
  gap=10ms
  [ "$level" = "$c" ] || gap=${level#*@}
  gap_ms=${gap%ms}
  for server in $servers; do
    start_server "$server" "$gap_ms"
    for _ in $(seq "$repeat"); do
      rm -f "$work/minimal.json"
      if [ "$yardstick" = 1 ]; then
        http POST "$reset" > /dev/null
        kind=
        [ "$backend" = ollama ] && kind=ndjson
        /usr/bin/time -f '%U %S %M' -o "$work/time" target/release/examples/minimal_client \
          "${url#http://}" "$c" "${duration%s}" $kind > "$work/minimal-out.json"
        http GET "$truth" > "$work/truth.json"
        row "$server" minimal "$c" "$work/minimal-out.json" "$work/truth.json" "$work/time" || status=1
      fi
      api=chat
      cat > "$work/s.yaml" <<YAML
name: overhead-$server-c$c
target: {backend: $backend, api: $api, model: "llm-bench-sim:latest", timeout: 60s}
prompts: [hello]
scenarios:
  steady: {executor: constant-vus, vus: $c, duration: $duration}
YAML
      for i in "${!clients[@]}"; do
        label=llm-bench
        [ ${#clients[@]} = 1 ] || label="build$((i + 1))"
        http POST "$reset" > /dev/null
        /usr/bin/time -f '%U %S %M' -o "$work/time" "${clients[$i]}" run "$work/s.yaml" --target-url "$url" \
          --no-preflight --quiet --output-dir "$work/results" > /dev/null
        http GET "$truth" > "$work/truth.json"
        row "$server" "$label" "$c" "$work/results/benchmark_latest.json" "$work/truth.json" "$work/time" || status=1
      done
    done
    stop_server
  done
done
if [ "$repeat" -gt 1 ] || [ ${#clients[@]} -gt 1 ]; then
  [ ${#clients[@]} = 1 ] || for i in "${!clients[@]}"; do echo "build$((i + 1)) = ${clients[$i]}"; done
  [ ! -f "$work/pairs.jsonl" ] || python3 - "$work/pairs.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
keys = ("ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99")
print("medians over repetitions, each against the yardstick of its own repetition:")
print(f'{"server":<9} {"client":<9} {"c":<5} {"runs":<4} {"CPU x":<6} ' + " ".join(f"{k:>9}" for k in keys))
groups = {}
for r in rows:
    groups.setdefault((r["server"], r["c"], r["client"]), []).append(r)
for (server, c, client), rs in groups.items():
    med = lambda k: statistics.median(r[k] for r in rs)
    print(f'{server:<9} {client:<9} {c:<5} {len(rs):<4} {med("cpu"):<6.2f} ' + " ".join(f"{med(k):+9.2f}" for k in keys))
PY
fi
exit $status
