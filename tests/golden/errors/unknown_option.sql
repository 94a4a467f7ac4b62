CREATE TABLE t WITH (
    'connector' = 'csv',
    'path' = 'x.csv',
    'delimeter' = ';'
);
SELECT * FROM t;
