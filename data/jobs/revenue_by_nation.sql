-- A batch ETL over Parquet: revenue per customer nation and order year
-- from the TPC-H sample in data/tpch (scale factor 0.01), written as
-- Parquet partitioned by year. Paths are relative to the directory weir
-- runs in (the repository root).
--
--   cargo run --release -- run data/jobs/revenue_by_nation.sql
--   cargo run --release -- sql "SELECT * FROM revenue ORDER BY order_year, revenue DESC LIMIT 5" \
--       --table revenue=parquet:target/example-output/revenue_by_nation

SET 'parallelism.default' = '2';

CREATE TABLE lineitem WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/lineitem.parquet');
CREATE TABLE orders   WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/orders.parquet');
CREATE TABLE customer WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/customer.parquet');
CREATE TABLE nation   WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/nation.parquet');

-- Line items that were not returned, with their order's year and customer.
CREATE VIEW kept_items AS
SELECT
    o_orderkey,
    o_custkey,
    extract(year FROM o_orderdate) AS order_year,
    l_extendedprice * (1 - l_discount) AS net_price
FROM lineitem
JOIN orders ON l_orderkey = o_orderkey
WHERE l_returnflag <> 'R';

CREATE TABLE revenue_by_nation (
    nation VARCHAR,
    revenue DECIMAL(38, 4),
    orders BIGINT,
    customers BIGINT,
    order_year INT
) WITH (
    'connector' = 'parquet',
    'path' = 'target/example-output/revenue_by_nation',
    'partition-by' = 'order_year',
    'sink.mode' = 'overwrite'
);

INSERT INTO revenue_by_nation
SELECT
    n_name AS nation,
    sum(net_price) AS revenue,
    count(DISTINCT o_orderkey) AS orders,
    count(DISTINCT o_custkey) AS customers,
    order_year
FROM kept_items
JOIN customer ON o_custkey = c_custkey
JOIN nation ON c_nationkey = n_nationkey
GROUP BY n_name, order_year;
