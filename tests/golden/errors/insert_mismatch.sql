CREATE TABLE lineitem WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/lineitem.parquet');
CREATE TABLE out (k BIGINT, n BIGINT) WITH ('connector' = 'parquet', 'path' = 'target/never-written');

INSERT INTO out
SELECT l_orderkey FROM lineitem;
