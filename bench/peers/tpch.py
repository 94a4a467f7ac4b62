"""TPC-H on Parquet in DuckDB, Polars (its SQL context) and DataFusion, with the
same query texts as weir (data/tpch/queries) and the same number of threads.
Each query runs RUNS times per engine, end to end (the engine opens the files
each time); prints the medians in milliseconds. With weir's JSON lines
(`cargo run --release -p weir-bench --bin tpch -- DIR --threads N > weir.jsonl`)
it also prints weir's medians, the ratios peer/weir per query and their
geometric means (bench/tpch-compare.sh runs both in one go).

    python bench/peers/tpch.py DIR THREADS [weir.jsonl [weir-other.jsonl]]

A second weir file (another configuration of weir, such as
`-D execution.batch-shuffle-mode=all-pipelined`) adds a column of its
medians and its ratio to the first.
"""

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
# Thread pools read these when the libraries load.
os.environ["POLARS_MAX_THREADS"] = str(THREADS)

import datafusion  # noqa: E402
import duckdb  # noqa: E402
import polars as pl  # noqa: E402

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "target/tpch/sf1")
WEIR = Path(sys.argv[3]) if len(sys.argv) > 3 else None
OTHER = Path(sys.argv[4]) if len(sys.argv) > 4 else None
QUERIES = Path(__file__).resolve().parents[2] / "data" / "tpch" / "queries"
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
RUNS = 3


def duckdb_run(sql):
    con = duckdb.connect()
    con.execute(f"SET threads={THREADS}")
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{DATA / (t + '.parquet')}')")
    return con.sql(sql).to_arrow_table().num_rows


def datafusion_run(sql):
    config = datafusion.SessionConfig().with_target_partitions(THREADS)
    ctx = datafusion.SessionContext(config)
    for t in TABLES:
        ctx.register_parquet(t, str(DATA / (t + ".parquet")))
    return sum(b.num_rows for b in ctx.sql(sql).collect())


def polars_run(sql):
    ctx = pl.SQLContext({t: pl.scan_parquet(DATA / (t + ".parquet")) for t in TABLES})
    return ctx.execute(sql).collect().height


ENGINES = [("duckdb", duckdb_run), ("polars", polars_run), ("datafusion", datafusion_run)]


def timed(run, sql):
    millis = []
    rows = None
    for _ in range(RUNS):
        start = time.perf_counter()
        rows = run(sql)
        millis.append((time.perf_counter() - start) * 1e3)
    return statistics.median(millis), rows


def weir_medians(path):
    if path is None or not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "median_ms" in record:
            out[record["query"]] = record["median_ms"]
    return out


def geomean(ratios):
    if not ratios:
        return "n/a"
    return f"{math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f} ({len(ratios)} q)"


def main():
    weir = weir_medians(WEIR)
    other = weir_medians(OTHER)
    results = {}
    for path in sorted(QUERIES.glob("q*.sql")):
        q = path.stem
        sql = path.read_text()
        results[q] = {}
        for name, run in ENGINES:
            try:
                results[q][name] = timed(run, sql)[0]
            except Exception as e:  # an engine that cannot run a query is reported, not fatal
                results[q][name] = None
                print(f"{q} {name}: {type(e).__name__}: {str(e).splitlines()[0][:120]}", file=sys.stderr)
    names = [n for n, _ in ENGINES]
    header = ["query", "weir ms"] + [f"{n} ms" for n in names] + [f"{n}/weir" for n in names]
    if other:
        header += [f"weir ({OTHER.stem}) ms", "weir/that"]
    other_ratios = []
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    ratios = {n: [] for n in names}
    for q, by_engine in results.items():
        w = weir.get(q)
        cells = [q, f"{w:.0f}" if w else "n/a"]
        cells += [f"{by_engine[n]:.0f}" if by_engine[n] is not None else "n/a" for n in names]
        for n in names:
            if w and by_engine[n]:
                ratio = by_engine[n] / w
                ratios[n].append(ratio)
                cells.append(f"{ratio:.2f}")
            else:
                cells.append("n/a")
        if other:
            o = other.get(q)
            cells.append(f"{o:.0f}" if o else "n/a")
            if w and o:
                other_ratios.append(w / o)
                cells.append(f"{w / o:.2f}")
            else:
                cells.append("n/a")
        print("| " + " | ".join(cells) + " |")
    geo = ["geomean", ""] + [""] * len(names)
    for n in names:
        r = ratios[n]
        geo.append(geomean(r))
    if other:
        geo += ["", geomean(other_ratios)]
    print("| " + " | ".join(geo) + " |")
    print(f"\nthreads {THREADS}, {RUNS} runs per query, medians; a ratio above 1 means weir was faster")


if __name__ == "__main__":
    main()
