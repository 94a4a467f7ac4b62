CREATE TABLE lineitem WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/lineitem.parquet');

SELECT l_orderkey, l_quantityy
FROM lineitem
WHERE l_quantity > 3;
