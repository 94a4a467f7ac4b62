"""Run the TPC-H queries with DuckDB and write the expected answers.

For each queries/qNN.sql this writes answers/qNN.csv (DuckDB's own CSV writer,
with a header) and lists every output column's DuckDB type in answers/types.txt
as lines `qNN column TYPE`.

Usage: answers.py [DATA_DIR]   (default: sf0.01 next to this script)
"""

import pathlib
import sys

import duckdb

HERE = pathlib.Path(__file__).resolve().parent
TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def main() -> None:
    data = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "sf0.01"
    queries = HERE / "queries"
    answers = HERE / "answers"
    answers.mkdir(exist_ok=True)

    con = duckdb.connect()
    con.execute("SET threads=1")
    for table in TABLES:
        path = data / f"{table}.parquet"
        if not path.exists():
            sys.exit(f"missing {path}")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sql_string(str(path))})")

    type_lines = []
    for qfile in sorted(queries.glob("q*.sql")):
        name = qfile.stem
        sql = qfile.read_text().strip()
        rel = con.sql(sql)
        for column, dtype in zip(rel.columns, rel.types):
            type_lines.append(f"{name} {column} {dtype}")
        out = answers / f"{name}.csv"
        # The query goes on its own lines: its first line may be a `--` comment.
        con.execute(f"COPY (\n{sql}\n) TO {sql_string(str(out))} (HEADER, DELIMITER ',')")
        rows = con.execute(f"SELECT count(*) FROM (\n{sql}\n)").fetchone()[0]
        print(f"{name}: {rows} rows")

    (answers / "types.txt").write_text("\n".join(type_lines) + "\n")


if __name__ == "__main__":
    main()
