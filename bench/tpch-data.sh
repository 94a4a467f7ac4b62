#!/usr/bin/env bash
# Generates TPC-H data as Parquet with tpchgen-cli (from PyPI, in a virtualenv
# under target/) at the scale factor given (default 1), into
# target/tpch/sf<N>/<table>.parquet.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
venv=target/tpch-venv
if [ ! -x "$venv/bin/tpchgen-cli" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet tpchgen-cli
fi
out="target/tpch/sf$scale"
mkdir -p "$out"
"$venv/bin/tpchgen-cli" parquet -s "$scale" --output-dir "$out"
ls -l "$out"
