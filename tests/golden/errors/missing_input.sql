CREATE TABLE t WITH ('connector' = 'parquet', 'path' = 'data/no-such-dir/*.parquet');
SELECT * FROM t;
