-- Writes 1,000,000 Nexmark bids as JSON messages to the Kafka topic 'bids'
-- of a broker on 127.0.0.1:9092, keyed by auction (so that one auction's
-- bids stay in order in one partition). A batch job: it ends when every
-- message is delivered. See the README's "Kafka" section.
CREATE TABLE generated_bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3)
) WITH ('connector' = 'nexmark', 'table' = 'bid', 'number-of-events' = '1000000');

CREATE TABLE bids (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'key.format' = 'csv',
  'key.fields' = 'auction',
  'format' = 'json'
);

INSERT INTO bids SELECT auction, bidder, price, date_time FROM generated_bid;
