"""Parquet scans of TPC-H lineitem in DuckDB and DataFusion, one thread each,
the same cases as `cargo bench -p weir-bench --bench scan`: 1, 2 and all
columns, with and without `l_shipdate` in January 1995. Each engine streams
the result as Arrow record batches and drops them. Prints the median of 5
runs per case and rows per second, then, when criterion's results of the
weir benchmark are under target/criterion, weir's medians and the ratios
(bench/scan-compare.sh runs both in one go).

    python bench/peers/scan.py [target/tpch/sf1/lineitem.parquet]
"""

import json
import os
import statistics
import sys
import time

import datafusion
import duckdb

PATH = sys.argv[1] if len(sys.argv) > 1 else "target/tpch/sf1/lineitem.parquet"
WHERE = "l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1995-01-31'"
CASES = [
    ("1-column", "l_orderkey", None),
    ("2-columns", "l_orderkey, l_extendedprice", None),
    ("all-columns", "*", None),
    ("1-column/where-shipdate", "l_orderkey", WHERE),
    ("2-columns/where-shipdate", "l_orderkey, l_extendedprice", WHERE),
    ("all-columns/where-shipdate", "*", WHERE),
]
RUNS = 5


def duckdb_scan(con, sql):
    reader = con.sql(sql).to_arrow_reader(8192)
    rows = 0
    for batch in reader:
        rows += batch.num_rows
    return rows


def datafusion_scan(ctx, sql):
    rows = 0
    for batch in ctx.sql(sql).execute_stream():
        rows += batch.to_pyarrow().num_rows
    return rows


def median_seconds(run):
    times = []
    rows = 0
    for _ in range(RUNS):
        start = time.perf_counter()
        rows = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), rows


def weir_median_ms(name):
    """weir's median for case `name` from criterion's last run, if any."""
    path = os.path.join("target", "criterion", "parquet-scan", name.replace("/", "_"),
                        "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1e6


def main():
    medians = {}
    con = duckdb.connect()
    con.execute("SET threads = 1")
    config = datafusion.SessionConfig().with_target_partitions(1)
    ctx = datafusion.SessionContext(config)
    ctx.register_parquet("lineitem", PATH)
    for name, columns, where in CASES:
        clause = f" WHERE {where}" if where else ""
        duck_sql = f"SELECT {columns} FROM read_parquet('{PATH}'){clause}"
        df_sql = f"SELECT {columns} FROM lineitem{clause}"
        for engine, run in [
            ("duckdb", lambda: duckdb_scan(con, duck_sql)),
            ("datafusion", lambda: datafusion_scan(ctx, df_sql)),
        ]:
            seconds, rows = median_seconds(run)
            medians[(name, engine)] = seconds * 1000
            print(f"{name:<28} {engine:<11} {seconds * 1000:9.1f} ms  {rows:>9} rows  "
                  f"{6001215 / seconds / 1e6:7.1f} M rows/s scanned")

    print()
    print(f"{'case':<28} {'weir ms':>9} {'duckdb ms':>10} {'datafusion ms':>14} "
          f"{'weir/duckdb':>12} {'weir/datafusion':>16}")
    for name, _, _ in CASES:
        weir = weir_median_ms(name)
        if weir is None:
            print(f"{name:<28} (no weir result: run cargo bench -p weir-bench --bench scan)")
            continue
        duck, fusion = medians[(name, "duckdb")], medians[(name, "datafusion")]
        print(f"{name:<28} {weir:9.1f} {duck:10.1f} {fusion:14.1f} "
              f"{weir / duck:12.2f} {weir / fusion:16.2f}")


if __name__ == "__main__":
    main()
