//! Batches with rows and no columns: `count(*)` over joins, unions, sorts
//! and limits whose projections keep no column. Each query counts the same
//! rows as its twin that keeps a column, in every batch shuffle mode and
//! blocking format, at parallelism 1 and 3, spilling, and with a task
//! failure injected.

use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use weir::sql::Session;
use weir_engine::registry::ConnectorOptions;
use weir_scheduler::{FailurePlan, JobConfig, MiniCluster};

/// Each query, and its twin that keeps a column (the rows the first must
/// count).
const QUERIES: [(&str, &str); 6] = [
    (
        "SELECT count(*) FROM lineitem JOIN orders ON l_orderkey = o_orderkey",
        "SELECT count(l_orderkey) FROM lineitem JOIN orders ON l_orderkey = o_orderkey",
    ),
    (
        "SELECT count(*) FROM lineitem LEFT JOIN orders \
         ON l_orderkey = o_orderkey AND o_totalprice > 300000",
        "SELECT count(l_orderkey) FROM lineitem LEFT JOIN orders \
         ON l_orderkey = o_orderkey AND o_totalprice > 300000",
    ),
    (
        "SELECT count(*) FROM customer JOIN nation ON c_nationkey = n_nationkey \
         JOIN orders ON o_custkey = c_custkey",
        "SELECT count(o_orderkey) FROM customer JOIN nation ON c_nationkey = n_nationkey \
         JOIN orders ON o_custkey = c_custkey",
    ),
    (
        "SELECT count(*) FROM (SELECT o_orderkey FROM orders \
         UNION ALL SELECT l_orderkey FROM lineitem) AS u",
        "SELECT count(k) FROM (SELECT o_orderkey AS k FROM orders \
         UNION ALL SELECT l_orderkey FROM lineitem) AS u",
    ),
    // A nested-loop join (the condition folds to a constant) whose left
    // side keeps no column and whose right side has no rows: every left
    // row comes out on its own.
    (
        "SELECT count(*) FROM region RIGHT JOIN nation ON r_regionkey = n_regionkey \
         LEFT JOIN customer ON n_nationkey = c_nationkey AND 1 > 2",
        "SELECT count(n_nationkey) FROM region RIGHT JOIN nation ON r_regionkey = n_regionkey \
         LEFT JOIN customer ON n_nationkey = c_nationkey AND 1 > 2",
    ),
    (
        "SELECT count(*) FROM (SELECT o_orderkey FROM orders \
         JOIN customer ON o_custkey = c_custkey ORDER BY o_totalprice LIMIT 100) AS t",
        "SELECT count(o_orderkey) FROM (SELECT o_orderkey FROM orders \
         JOIN customer ON o_custkey = c_custkey ORDER BY o_totalprice LIMIT 100) AS t",
    ),
];

fn config(settings: &[(&str, &str)]) -> JobConfig {
    let mut config = JobConfig::default();
    config.set("worker.slots", "4").expect("valid");
    config
        .set("restart-strategy.fixed-delay.delay", "0 ms")
        .expect("valid");
    for (key, value) in settings {
        config.set(key, value).expect("a valid option");
    }
    config
}

/// The one number query `sql` returns, with `failure` injected.
async fn count(sql: &str, config: JobConfig, fail: bool) -> i64 {
    let mut session = Session::new(weir_formats::registry(), config.clone());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tpch/sf0.01");
    for table in ["customer", "lineitem", "nation", "orders", "region"] {
        let path = dir.join(format!("{table}.parquet")).display().to_string();
        let options = ConnectorOptions::from([("path".to_string(), path)]);
        session
            .register_table(table, "parquet", options)
            .expect("registers");
    }
    let script = session.execute(sql).await.expect("plans");
    let job = session
        .query_job("count", &script.queries[0])
        .expect("translates");
    let plan = match fail {
        // The last vertex before the final count fails at its first batch.
        true => {
            let vertices = job.graph.vertices.len();
            FailurePlan::none().fail_task(
                job.graph.vertices[vertices.saturating_sub(2)].id,
                0,
                0,
                1,
            )
        }
        false => FailurePlan::none(),
    };
    MiniCluster::new(config)
        .run_with_failures(job.graph, plan)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches = job.output.batches();
    let column = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .expect("a row")
        .column(0)
        .as_primitive::<Int64Type>()
        .clone();
    assert_eq!(column.len(), 1);
    column.value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_without_columns_are_counted_on_every_path() {
    let settings: [&[(&str, &str)]; 6] = [
        &[("parallelism.default", "1")],
        &[("parallelism.default", "3")],
        &[
            ("parallelism.default", "3"),
            ("execution.batch-shuffle-mode", "all-pipelined"),
        ],
        &[("parallelism.default", "3"), ("shuffle.format", "parquet")],
        &[
            ("parallelism.default", "2"),
            ("memory.per-slot", "1mb"),
            ("shuffle.format", "parquet"),
        ],
        &[("parallelism.default", "2"), ("memory.per-slot", "1mb")],
    ];
    for (sql, twin) in QUERIES {
        let expected = count(twin, config(&[]), false).await;
        assert!(expected > 0, "{twin}");
        for (i, settings) in settings.iter().enumerate() {
            let counted = count(sql, config(settings), i == 1).await;
            assert_eq!(counted, expected, "{sql} with {settings:?}");
        }
    }
}
