CREATE TABLE t WITH ('connector' = 'parquett', 'path' = 'x.parquet');
SELECT * FROM t;
