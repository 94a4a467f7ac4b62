#!/usr/bin/env bash
# The cost of the network path: shuffle-heavy TPC-H queries (Q9, Q18) on a
# coordinator with one worker of SLOTS slots, then with three workers that
# share those slots (SLOTS / 3 each), all on loopback, in both batch
# shuffle modes (all-blocking: partitions fetched from the worker that
# wrote them; all-pipelined: channels streamed between workers), and
# embedded (no network at all). Prints the median of RUNS runs of each and
# the ratio of three workers to one.
#
#   bench/cluster-compare.sh [SCALE]            (default: 1)
#
# SLOTS (default 6), RUNS (default 3) and QUERIES (default "9 18") come
# from the environment. Generates the data first when missing
# (bench/tpch-data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
slots="${SLOTS:-6}"
runs="${RUNS:-3}"
queries="${QUERIES:-9 18}"
data="$PWD/target/tpch/sf$scale"
[ -f "$data/lineitem.parquet" ] || bench/tpch-data.sh "$scale"
. bench/processes.sh
tables=()
for t in customer lineitem nation orders part partsupp region supplier; do
  tables+=(--table "$t=parquet:$data/$t.parquet")
done
# A coordinator with WORKERS workers sharing the slots: its URL in $url.
start_cluster() {
  local workers=$1
  "$weir" coordinator --bind 127.0.0.1:0 > "$work/coordinator.out" 2>/dev/null &
  pids+=($!)
  until grep -q listening "$work/coordinator.out"; do sleep 0.05; done
  url=$(sed 's/.* on //' "$work/coordinator.out")
  for _ in $(seq "$workers"); do
    "$weir" worker --coordinator "$url" --slots $((slots / workers)) 2>/dev/null &
    pids+=($!)
  done
  until [ "$("$weir" workers --coordinator "$url" | grep -c alive)" = "$workers" ]; do
    sleep 0.05
  done
}
stop_cluster() {
  for pid in "${pids[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
# The median time of query $1 in mode $2, on $url when given.
timed() {
  local query=$1 mode=$2 at=${3:-}
  local where=()
  [ -n "$at" ] && where=(--coordinator "$at")
  local times=()
  for _ in $(seq "$runs"); do
    local start
    start=$(now)
    if ! "$weir" sql -f "data/tpch/queries/q$(printf %02d "$query").sql" "${tables[@]}" \
      -p "$slots" -D "worker.slots=$slots" -D "execution.batch-shuffle-mode=$mode" \
      "${where[@]}" > /dev/null 2> "$work/stderr"; then
      cat "$work/stderr" >&2
      exit 1
    fi
    times+=("$(minus "$(now)" "$start")")
  done
  printf '%s\n' "${times[@]}" | median
}
declare -A results
for mode in all-blocking all-pipelined; do
  for q in $queries; do
    results[embedded,$mode,$q]=$(timed "$q" "$mode")
  done
done
for workers in 1 3; do
  start_cluster "$workers"
  for mode in all-blocking all-pipelined; do
    for q in $queries; do
      results[$workers,$mode,$q]=$(timed "$q" "$mode" "$url")
    done
  done
  stop_cluster
done
printf '%-6s %-14s %12s %12s %12s %10s\n' query mode "embedded (s)" "1 worker (s)" \
  "3 workers (s)" "3 / 1"
for mode in all-blocking all-pipelined; do
  for q in $queries; do
    one=${results[1,$mode,$q]}
    three=${results[3,$mode,$q]}
    printf '%-6s %-14s %12.2f %12.2f %12.2f %10.2f\n' "Q$q" "$mode" \
      "${results[embedded,$mode,$q]}" "$one" "$three" \
      "$(awk -v a="$three" -v b="$one" 'BEGIN { print a / b }')"
  done
done
