#!/usr/bin/env bash
# Regenerates the TPC-H data set (SF 0.01, Parquet) and DuckDB's answers to the
# 22 queries. Uses a Python venv under target/tpch-venv (created if missing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SCALE=0.01
VENV="$ROOT/target/tpch-venv"
DATA="$HERE/sf$SCALE"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check 'tpchgen-cli==4.0.0' 'duckdb==2.0.0'

mkdir -p "$DATA"
"$VENV/bin/tpchgen-cli" parquet -s "$SCALE" --output-dir "$DATA" --overwrite --quiet

# tpchgen writes <table>.parquet; check they are all there.
for table in region nation supplier customer part partsupp orders lineitem; do
    if [ ! -f "$DATA/$table.parquet" ]; then
        echo "tpchgen-cli did not write $DATA/$table.parquet" >&2
        exit 1
    fi
done

rm -f "$HERE"/answers/q*.csv "$HERE"/answers/types.txt
"$VENV/bin/python" "$HERE/answers.py" "$DATA"
