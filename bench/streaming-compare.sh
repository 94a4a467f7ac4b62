#!/usr/bin/env bash
# Streaming throughput: weir (bench/src/bin/streaming.rs, over the nexmark
# connector) and Apache Flink (bench/peers/streaming_flink.py, PyFlink over
# datagen) in the same run, the same queries, events and parallelism; prints
# events per second per core for each and their ratio, then weir's
# checkpoint of 1M keys.
#
#   bench/streaming-compare.sh [EVENTS] [PARALLELISM]   (defaults: 10000000 and 2)
#
# Flink runs from a virtualenv under target/ (created on first use, from
# PyPI: apache-flink) and needs Java 17 (apt install openjdk-17-jre-headless).
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
parallelism="${2:-2}"
command -v java >/dev/null || { echo "Flink needs Java 17 on the PATH: apt install openjdk-17-jre-headless" >&2; exit 1; }
venv=target/flink-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check apache-flink
cargo build --release -p weir-bench --bin streaming
mkdir -p target/streaming
weir="target/streaming/weir-$events-p$parallelism.jsonl"
flink="target/streaming/flink-$events-p$parallelism.jsonl"
target/release/streaming --events "$events" --parallelism "$parallelism" | tee "$weir"
"$venv/bin/python" bench/peers/streaming_flink.py --events "$events" --parallelism "$parallelism" | tee "$flink"
python3 - "$weir" "$flink" <<'REPORT'
import json, sys

def lines(path):
    return [json.loads(line) for line in open(path) if line.strip()]

weir, flink = lines(sys.argv[1]), lines(sys.argv[2])
by_query = {l["query"]: l for l in flink}
print(f"\n{'query':<10} {'weir ev/s/core':>15} {'flink ev/s/core':>16} {'weir/flink':>11}")
for w in weir:
    f = by_query.get(w["query"])
    if w["query"] in ("warmup", "checkpoint") or f is None:
        continue
    ratio = w["events_per_second_per_core"] / f["events_per_second_per_core"]
    print(f"{w['query']:<10} {w['events_per_second_per_core']:>15,.0f} "
          f"{f['events_per_second_per_core']:>16,.0f} {ratio:>10.1f}x")
for w in weir:
    if w["query"] == "checkpoint":
        print(f"\ncheckpoint of {w['keys']:,} keys: {w['last_checkpoint_ms']} ms, "
              f"{w['last_checkpoint_bytes'] / 2**20:.1f} MiB, {w['last_checkpoint_rows']:,} rows of state "
              f"({w['checkpoints_completed']} completed, {w['checkpoints_failed']} failed)")
REPORT
