CREATE TABLE lineitem WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/lineitem.parquet');

SELECT l_orderkey
FROM lineitem
WHERE l_comment * 2 > 1;
