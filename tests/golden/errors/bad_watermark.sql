CREATE TABLE bid (auction BIGINT, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time + INTERVAL '4' SECOND)
WITH ('connector' = 'nexmark');
SELECT * FROM bid;
