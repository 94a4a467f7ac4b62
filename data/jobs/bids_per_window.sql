-- Bids per auction and 10-second window over Nexmark's unbounded stream of
-- bids, committed exactly once as Parquet files at each checkpoint. It runs
-- until stopped: Ctrl-C (with --stop-with-savepoint DIR to keep a
-- savepoint to resume from with --from-savepoint DIR), or weir stop.
SET 'execution.checkpointing.interval' = '5 s';

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'table' = 'bid', 'events-per-second' = '100000');

CREATE TABLE bids_per_window
WITH ('connector' = 'parquet', 'path' = 'target/example-output/bids_per_window');

INSERT INTO bids_per_window
SELECT auction, window_start, window_end, count(*) AS bids, max(price) AS top_price
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
