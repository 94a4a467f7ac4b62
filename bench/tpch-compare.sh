#!/usr/bin/env bash
# TPC-H on Parquet: weir (in its default all-blocking shuffle mode, then
# all-pipelined), then DuckDB, Polars and DataFusion in the same run, on the
# same files, with the same number of threads; prints per-query medians,
# ratios and geometric means.
#
#   bench/tpch-compare.sh [SCALE] [THREADS]      (defaults: 1 and the core count)
#
# Generates the data first when missing (bench/tpch-data.sh). The peers run
# from a virtualenv under target/ (created on first use, from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
threads="${2:-$(nproc)}"
data="target/tpch/sf$scale"
[ -f "$data/lineitem.parquet" ] || bench/tpch-data.sh "$scale"
venv=target/peers-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check duckdb polars 'datafusion==55.*' pyarrow
cargo build --release -p weir-bench --bin tpch
out="target/tpch/weir-sf$scale-t$threads.jsonl"
pipelined="target/tpch/all-pipelined.jsonl"
target/release/tpch "$data" --threads "$threads" --runs 3 | tee "$out"
target/release/tpch "$data" --threads "$threads" --runs 3 \
  -D execution.batch-shuffle-mode=all-pipelined | tee "$pipelined"
"$venv/bin/python" bench/peers/tpch.py "$data" "$threads" "$out" "$pipelined"
