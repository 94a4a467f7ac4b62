-- Bids per auction and 10-second window, from the Kafka topic 'bids' into
-- the topic 'bids_per_window', checkpointing every 5 seconds (the offsets
-- of every partition are in each checkpoint, and the output is flushed at
-- each one: at least once). It runs until stopped: Ctrl-C (with
-- --stop-with-savepoint DIR to resume later with --from-savepoint DIR).
-- See the README's "Kafka" section.
SET 'execution.checkpointing.interval' = '5 s';

CREATE TABLE bids (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'bids-per-window',
  'scan.startup.mode' = 'earliest-offset',
  'scan.watermark.idle-timeout' = '10 s',
  'format' = 'json'
);

CREATE TABLE bids_per_window (
  auction BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  bids BIGINT,
  top_price BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids_per_window',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'format' = 'json'
);

INSERT INTO bids_per_window
SELECT auction, window_start, window_end, count(*) AS bids, max(price) AS top_price
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
