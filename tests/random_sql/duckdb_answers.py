"""DuckDB's answers to the random SQL tester's queries.

Usage: duckdb_answers.py TPCH_DIR QUERIES_JSON THREADS

Reads a JSON array of queries and prints one JSON object per query, one a
line: {"rows": [[value, ...], ...]} or {"error": "..."}. Each value is
null or a string tagged with its kind: "i:" integer, "d:" decimal, "f:"
float (repr), "s:" string, "t:" date, "b:" boolean.
"""

import datetime
import decimal
import json
import sys

import duckdb


def tagged(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "b:" + ("true" if value else "false")
    if isinstance(value, int):
        return "i:" + str(value)
    if isinstance(value, float):
        return "f:" + repr(value)
    if isinstance(value, decimal.Decimal):
        return "d:" + format(value, "f")
    if isinstance(value, datetime.datetime):
        return "t:" + value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return "t:" + value.isoformat()
    return "s:" + str(value)


def main():
    tpch, queries, threads = sys.argv[1], sys.argv[2], sys.argv[3]
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    # Its progress bar would mix with the answers on standard output.
    con.execute("SET enable_progress_bar = false")
    # DuckDB 2.0's top-n gives NULLs that are not there under DESC NULLS
    # FIRST over a UNION ALL (see main.rs): sort, then limit.
    con.execute("SET disabled_optimizers = 'top_n'")
    for table in ["customer", "lineitem", "nation", "orders", "part", "partsupp",
                  "region", "supplier"]:
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{tpch}/{table}.parquet')")
    with open(queries) as f:
        texts = json.load(f)
    out = sys.stdout
    for text in texts:
        try:
            rows = con.execute(text).fetchall()
            answer = {"rows": [[tagged(v) for v in row] for row in rows]}
        except Exception as e:  # noqa: BLE001 - every failure is an answer
            answer = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(answer) + "\n")


main()
