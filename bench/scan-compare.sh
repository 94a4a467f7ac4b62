#!/usr/bin/env bash
# Parquet scans of TPC-H lineitem by weir, DuckDB and DataFusion in one run:
# the weir benchmark, then the peers, then the ratios. Needs the data
# (bench/tpch-data.sh 1) and a Python with duckdb and datafusion ($PYTHON,
# default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
file="${1:-target/tpch/sf1/lineitem.parquet}"
WEIR_TPCH_DIR="$(dirname "$file")" cargo bench -p weir-bench --bench scan -- --noplot parquet-scan
"${PYTHON:-python3}" bench/peers/scan.py "$file"
