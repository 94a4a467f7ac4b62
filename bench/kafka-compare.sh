#!/usr/bin/env bash
# Kafka throughput: weir's kafka sink and source (bench/src/bin/kafka.rs)
# and librdkafka's bare producer and consumer, in the same run against the
# same local broker (tansu, started here on 127.0.0.1 with its in-memory
# storage); then Nexmark-like queries reading their bids from a topic.
#
#   bench/kafka-compare.sh [MESSAGES] [PARALLELISM]   (defaults: 1000000 and 2)
#
# tansu is installed on first use into ${XDG_CACHE_HOME:-~/.cache}/weir/tools
# (cargo install, about 15 minutes), as the tests do.
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-1000000}"
parallelism="${2:-2}"
tools="${WEIR_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir/tools}"
if [ ! -x "$tools/bin/tansu" ]; then
  cargo install tansu --version 0.6.0 --locked --features dynostore --root "$tools"
fi
cargo build --release -p weir-bench --bin kafka
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tools/bin/tansu" broker --storage-engine memory://tansu/ \
  --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  >/dev/null 2>&1 &
broker=$!
trap 'kill $broker' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
mkdir -p target/kafka-bench
out="target/kafka-bench/weir-$messages-p$parallelism.jsonl"
target/release/kafka --servers "127.0.0.1:$port" --messages "$messages" \
  --parallelism "$parallelism" | tee "$out"
python3 - "$out" <<'REPORT'
import json, sys

lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(l["case"], l["message_bytes"]): l for l in lines}
print(f"\n{'case':<16} {'bytes':>6} {'msg/s/core':>12} {'MB/s/core':>10} {'of raw':>7}")
for l in lines:
    raw = {"sink": "raw-producer", "source": "raw-consumer"}.get(l["case"])
    ratio = ""
    if raw and (raw, l["message_bytes"]) in by:
        ratio = f"{l['messages_per_second'] / by[(raw, l['message_bytes'])]['messages_per_second']:.2f}"
    size = l["message_bytes"] or "-"
    print(f"{l['case']:<16} {size:>6} {l['messages_per_second_per_core']:>12,.0f} "
          f"{l['mb_per_second_per_core']:>10.1f} {ratio:>7}")
REPORT
