CREATE TABLE nation (n_nationkey BIGINT) WITH (
    'connector' = 'csv',
    'path' = 'data/tpch/sf0.01/nation.parquet',
    'bad-records' = 'skip'
);
SELECT * FROM nation;
