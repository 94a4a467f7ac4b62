"""The reference side of weir's operator benchmarks (benches/operators.rs):
the same operations over the same `events` table in DuckDB and DataFusion,
one thread each, timed with the table already in memory.

    python3 -m venv .venv && .venv/bin/pip install duckdb datafusion pyarrow
    .venv/bin/python bench/peers/operators.py [--rows 10000000] [--runs 5]

Prints one line per (peer, operation): the median of the runs in ms and rows
per second. Each query wraps its operation in a cheap aggregate (or exports
the sorted rows to Arrow) so the peer cannot skip the work and the result
transfer stays small.
"""

import argparse
import statistics
import time

import duckdb
import pyarrow as pa
from datafusion import SessionConfig, SessionContext

EVENTS = """
SELECT i,
       (i * 2654435761) % 10 AS k10,
       (i * 2654435761) % 10000 AS k10k,
       (i * 2654435761) % {rows} AS kall,
       i % 1000 AS v,
       CAST((i * 7919) % 100000 AS DOUBLE) / 100.0 AS x
FROM range({rows}) AS r(i)
"""

# The build side of the join: one row per key 0..BUILD_ROWS, with a payload.
BUILD = "SELECT i AS bk, i % 97 AS p FROM range({build}) AS r(i)"

OPERATIONS = {
    "filter-project": "SELECT count(*), sum(w) FROM (SELECT k10k, v * 2 + 1 AS w FROM events WHERE v < 500 AND x > 10.0)",
    "aggregate/10": "SELECT count(*), sum(s), sum(c) FROM (SELECT k10, sum(v) AS s, count(*) AS c FROM events GROUP BY k10)",
    "aggregate/10k": "SELECT count(*), sum(s), sum(c) FROM (SELECT k10k, sum(v) AS s, count(*) AS c FROM events GROUP BY k10k)",
    "aggregate/all": "SELECT count(*), sum(s), sum(c) FROM (SELECT kall, sum(v) AS s, count(*) AS c FROM events GROUP BY kall)",
    "join/1m-build": "SELECT count(*), sum(p) FROM events JOIN build ON events.kall % {build} = build.bk",
    "sort/in-memory": "SELECT * FROM events ORDER BY kall, v",
}


def run_duckdb(rows, build, runs):
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("CREATE TABLE events AS " + EVENTS.format(rows=rows))
    con.execute("CREATE TABLE build AS " + BUILD.format(build=build))
    for name, sql in OPERATIONS.items():
        sql = sql.format(build=build)
        def once():
            if name.startswith("sort"):
                con.execute(sql).to_arrow_table()
            else:
                con.execute(sql).fetchall()
        yield name, timed(once, runs)


def run_datafusion(rows, build, runs):
    config = SessionConfig().with_target_partitions(1)
    ctx = SessionContext(config)
    events = ctx.sql(EVENTS.format(rows=rows).replace("range({})".format(rows), "range(0, {})".format(rows))).to_arrow_table()
    ctx.register_record_batches("events", [events.to_batches()])
    build_table = ctx.sql(BUILD.format(build=build).replace("range({})".format(build), "range(0, {})".format(build))).to_arrow_table()
    ctx.register_record_batches("build", [build_table.to_batches()])
    for name, sql in OPERATIONS.items():
        sql = sql.format(build=build)
        yield name, timed(lambda: ctx.sql(sql).to_arrow_table(), runs)


def timed(work, runs):
    work()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--build", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for peer, runner in [("duckdb", run_duckdb), ("datafusion", run_datafusion)]:
        for name, seconds in runner(args.rows, args.build, args.runs):
            print(f"{peer:<11} {name:<15} {seconds * 1e3:9.1f} ms {args.rows / seconds / 1e6:8.1f} M rows/s")


if __name__ == "__main__":
    main()
