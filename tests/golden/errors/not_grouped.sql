CREATE TABLE lineitem WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/lineitem.parquet');

SELECT l_returnflag, sum(l_quantity)
FROM lineitem
GROUP BY l_linestatus;
