-- Reads the topic 'bids_per_window' as it is now (a bounded read: up to
-- the end each partition has when the job starts) and prints the auctions
-- with the most bids in a window. See the README's "Kafka" section.
CREATE TABLE bids_per_window (
  auction BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  bids BIGINT,
  top_price BIGINT,
  part INT METADATA FROM 'partition' VIRTUAL,
  off BIGINT METADATA FROM 'offset' VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids_per_window',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json'
);

SELECT auction, window_start, bids, top_price, part, off
FROM bids_per_window
ORDER BY bids DESC, window_start, auction
LIMIT 10;
