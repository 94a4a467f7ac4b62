"""Apache Flink as the reference peer for weir's streaming benchmark: Nexmark-like
queries over a generated `bid` stream, in PyFlink's local mini-cluster
(STREAMING mode), each writing to a `blackhole` sink.

    python3 -m venv target/flink-venv && target/flink-venv/bin/pip install apache-flink
    target/flink-venv/bin/python bench/peers/streaming_flink.py \
        [--events 10000000] [--parallelism 2] [--queries q0,q1,q2,tumble,hop_2s,hop_100ms]

Needs Java 17 on the PATH (PyFlink starts its own JVM). The wheel has no
Nexmark source, so the `bid` table comes from Flink's `datagen` connector:
auction uniform in 1000..1999, bidder random, price uniform in 1..10000,
channel / url / extra random strings of 8 / 20 / 10 characters. A `sequence`
column seq in 0..events-1 bounds the stream (the source finishes after exactly
`events` rows) and drives event time: date_time = seq / 10 milliseconds, i.e.
10,000 events per second of event time (Nexmark's default rate), so 10M events
span 1,000 s of event time (100 tumbling 10 s windows). The watermark is
date_time - 4 s. The sequence generator hands values out round-robin across
the source subtasks, so every subtask's event time advances at the same pace.
`rows-per-second` is set to 10^9 (datagen's default of 10,000 rows/s would
measure the throttle).

Each query runs in a fresh TableEnvironment (a fresh mini-cluster) with
parallelism P. A tiny warm-up job runs first so that JVM start-up and class
loading are not charged to the first query; it is printed as query "warmup".
Prints one JSON line per query:

    {"engine": "flink", "query": ..., "events": N, "parallelism": P,
     "seconds": s, "events_per_second": N/s, "events_per_second_per_core": N/s/P,
     "job_seconds": ...}

`seconds` is the wall time of `execute_insert(...).wait()`: planning, job
submission, mini-cluster and task start-up, the run itself (generator
included) and tear-down. `job_seconds` is Flink's own net runtime of the job
(JobExecutionResult.getNetRuntime: from job start to its end in the cluster),
which leaves out client-side planning; both include a fixed cost of about a
second, so use a large number of events.
"""

import argparse
import json
import sys
import time

from pyflink.table import EnvironmentSettings, TableEnvironment

EVENTS_PER_SECOND_OF_EVENT_TIME = 10_000

BID = """
CREATE TEMPORARY TABLE bid (
    auction BIGINT,
    bidder BIGINT,
    price BIGINT,
    channel STRING,
    url STRING,
    seq BIGINT,
    extra STRING,
    date_time AS CAST(TO_TIMESTAMP_LTZ(seq / {ms_div}, 3) AS TIMESTAMP(3)),
    WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (
    'connector' = 'datagen',
    'rows-per-second' = '1000000000',
    'fields.auction.kind' = 'random',
    'fields.auction.min' = '1000',
    'fields.auction.max' = '1999',
    'fields.bidder.kind' = 'random',
    'fields.price.kind' = 'random',
    'fields.price.min' = '1',
    'fields.price.max' = '10000',
    'fields.channel.length' = '8',
    'fields.url.length' = '20',
    'fields.extra.length' = '10',
    'fields.seq.kind' = 'sequence',
    'fields.seq.start' = '0',
    'fields.seq.end' = '{last}'
)
"""

WINDOW_SINK = "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT"


def window_query(tvf):
    return (
        "SELECT auction, window_start, window_end, count(*) AS bids "
        f"FROM TABLE({tvf}) GROUP BY auction, window_start, window_end"
    )


# name -> (sink columns, query)
QUERIES = {
    "q0": (
        "auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), extra STRING",
        "SELECT auction, bidder, price, date_time, extra FROM bid",
    ),
    "q1": (
        "auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), date_time TIMESTAMP(3), extra STRING",
        "SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid",
    ),
    "q2": (
        "auction BIGINT, price BIGINT",
        "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
    ),
    "tumble": (
        WINDOW_SINK,
        window_query("TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND)"),
    ),
    "hop_2s": (
        WINDOW_SINK,
        window_query("HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND)"),
    ),
    "hop_100ms": (
        WINDOW_SINK,
        window_query("HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '0.1' SECOND, INTERVAL '10' SECOND)"),
    ),
}


def table_env(events, parallelism):
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", str(parallelism))
    conf.set("table.local-time-zone", "UTC")
    conf.set("pipeline.name", "weir-peer")
    t_env.execute_sql(
        BID.format(last=events - 1, ms_div=EVENTS_PER_SECOND_OF_EVENT_TIME // 1000)
    )
    return t_env


def run(query, events, parallelism):
    """Runs one query to completion; returns (wall seconds, job net runtime seconds)."""
    columns, sql = QUERIES[query]
    t_env = table_env(events, parallelism)
    t_env.execute_sql(f"CREATE TEMPORARY TABLE sink ({columns}) WITH ('connector' = 'blackhole')")
    table = t_env.sql_query(sql)
    start = time.perf_counter()
    result = table.execute_insert("sink")
    result.wait()
    seconds = time.perf_counter() - start
    job_seconds = None
    try:
        job = result.get_job_client().get_job_execution_result().result()
        job_seconds = job.get_net_runtime() / 1000.0
    except Exception:  # net runtime is a bonus; the wall time is the figure
        pass
    return seconds, job_seconds


def report(query, events, parallelism, seconds, job_seconds):
    line = {
        "engine": "flink",
        "query": query,
        "events": events,
        "parallelism": parallelism,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds),
        "events_per_second_per_core": round(events / seconds / parallelism),
    }
    if job_seconds is not None:
        line["job_seconds"] = round(job_seconds, 3)
    print(json.dumps(line), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--queries", default=",".join(QUERIES), help="comma-separated, from: " + ", ".join(QUERIES))
    parser.add_argument("--warmup-events", type=int, default=100_000)
    args = parser.parse_args()
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    unknown = [q for q in queries if q not in QUERIES]
    if unknown:
        parser.error(f"unknown queries {unknown}; known: {list(QUERIES)}")

    if args.warmup_events > 0:
        report("warmup", args.warmup_events, args.parallelism, *run("q0", args.warmup_events, args.parallelism))
    failed = False
    for q in queries:
        try:
            seconds, job_seconds = run(q, args.events, args.parallelism)
        except Exception as e:  # report and go on with the other queries
            failed = True
            print(f"{q}: {type(e).__name__}: {str(e).splitlines()[0][:300]}", file=sys.stderr)
            continue
        report(q, args.events, args.parallelism, seconds, job_seconds)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
