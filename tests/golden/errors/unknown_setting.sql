SET 'parallelism.defualt' = '2';
SELECT 1;
