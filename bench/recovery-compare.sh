#!/usr/bin/env bash
# Recovery time after a worker loss, as a function of the heartbeat
# timeout: a coordinator and three workers of two slots on loopback run a
# batch aggregation (ROWS ids summed by their remainder modulo 1000,
# parallelism 6); the same job then runs again with one worker SIGKILLed
# KILL_AT seconds in. Prints, per timeout, the median of RUNS runs of
# each and their difference: the time the loss cost (detection, then the
# restart of the lost attempts on the other workers).
#
#   bench/recovery-compare.sh [TIMEOUTS...]     (default: 1s 2s 4s)
#
# ROWS (default 600,000,000), KILL_AT (default 1) and RUNS (default 3)
# come from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
timeouts=("$@")
[ $# -gt 0 ] || timeouts=(1s 2s 4s)
rows="${ROWS:-600000000}"
kill_at="${KILL_AT:-1}"
runs="${RUNS:-3}"
. bench/processes.sh
cat > "$work/sums.sql" <<SQL
SET 'parallelism.default' = '6';
CREATE TABLE numbers (id BIGINT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '$rows',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '$((rows - 1))');
CREATE TABLE sums (bucket BIGINT, total BIGINT, n BIGINT)
  WITH ('connector' = 'blackhole');
INSERT INTO sums SELECT id % 1000, sum(id), count(*) FROM numbers GROUP BY id % 1000;
SQL
printf '%-8s %12s %12s %12s\n' timeout "no loss (s)" "a loss (s)" "cost (s)"
for timeout in "${timeouts[@]}"; do
  "$weir" coordinator --bind 127.0.0.1:0 --heartbeat-interval 200ms \
    --heartbeat-timeout "$timeout" > "$work/coordinator.out" 2>/dev/null &
  pids+=($!)
  until grep -q listening "$work/coordinator.out"; do sleep 0.05; done
  url=$(sed 's/.* on //' "$work/coordinator.out")
  start_worker() {
    "$weir" worker --coordinator "$url" --slots 2 2>/dev/null &
    pids+=($!)
    workers+=($!)
  }
  workers=()
  for _ in 1 2 3; do start_worker; done
  until [ "$("$weir" workers --coordinator "$url" | grep -c alive)" -ge 3 ]; do sleep 0.1; done
  plain=()
  lossy=()
  for _ in $(seq "$runs"); do
    begin=$(now)
    "$weir" run "$work/sums.sql" --coordinator "$url" --progress none 2>/dev/null
    plain+=("$(minus "$(now)" "$begin")")
    begin=$(now)
    "$weir" run "$work/sums.sql" --coordinator "$url" --progress none 2>"$work/lossy.err" &
    job=$!
    sleep "$kill_at"
    kill -9 "${workers[0]}"
    wait "$job"
    lossy+=("$(minus "$(now)" "$begin")")
    grep -q ' 0 restart(s)' "$work/lossy.err" && echo "warning: a run ended before the loss" >&2
    # Back to three workers for the next run.
    workers=("${workers[@]:1}")
    start_worker
    until [ "$("$weir" workers --coordinator "$url" | grep -c alive)" -ge 3 ]; do sleep 0.1; done
  done
  a=$(printf '%s\n' "${plain[@]}" | median)
  b=$(printf '%s\n' "${lossy[@]}" | median)
  printf '%-8s %12.2f %12.2f %12.2f\n' "$timeout" "$a" "$b" "$(minus "$b" "$a")"
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  pids=()
done
