//! End-to-end tests of SQL through the `weir` command line: scripts, ad-hoc
//! queries, output formats, explain (golden files) and error messages
//! (golden files).
//!
//! Golden files live in `tests/golden`. Run with `WEIR_BLESS=1` to rewrite
//! them from the current output after checking the difference is wanted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(root())
        .env_remove("WEIR_CONFIG")
        .output()
        .expect("weir runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `actual` with this machine's paths replaced, so golden files hold the
/// same text everywhere.
fn portable(actual: &str) -> String {
    let root = root().display().to_string();
    actual
        .replace(&format!("file://{root}"), "file://$ROOT")
        .replace(&root, "$ROOT")
}

/// Compares `actual` with golden file `name`, or writes it under
/// `WEIR_BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path: PathBuf = root().join("tests/golden").join(name);
    let actual = portable(actual);
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("creates");
        std::fs::write(&path, &actual).expect("writes");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with WEIR_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "output differs from {} (run with WEIR_BLESS=1 to accept it)",
        path.display()
    );
}

const TPCH_TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

fn tpch_tables() -> Vec<String> {
    TPCH_TABLES
        .iter()
        .flat_map(|t| {
            [
                "--table".to_string(),
                format!("{t}=data/tpch/sf0.01/{t}.parquet"),
            ]
        })
        .collect()
}

fn with_tables<'a>(args: &[&'a str], tables: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(tables.iter().map(String::as_str));
    all
}

#[test]
fn explain_of_tpch_queries_matches_the_golden_files() {
    let tables = tpch_tables();
    for (query, format) in [
        ("q01", "text"),
        ("q03", "text"),
        ("q17", "text"),
        ("q03", "json"),
        ("q05", "dot"),
    ] {
        let script = format!("data/tpch/queries/{query}.sql");
        let out = weir(&with_tables(
            &["explain", &script, "-p", "2", "--format", format],
            &tables,
        ));
        assert!(out.status.success(), "{query}: {}", text(&out.stderr));
        golden(&format!("explain/{query}.{format}"), &text(&out.stdout));
    }
}

#[test]
fn explain_of_the_streaming_example_matches_its_golden_file() {
    let out = weir(&["explain", "data/jobs/bids_per_window.sql", "-p", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    golden("explain/bids_per_window.text", &text(&out.stdout));
}

#[test]
fn error_messages_match_the_golden_files() {
    let dir = root().join("tests/golden/errors");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the error scripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 8, "{} error scripts", scripts.len());
    for script in scripts {
        let relative = script
            .strip_prefix(root())
            .expect("under the root")
            .display()
            .to_string();
        let out = weir(&["run", &relative]);
        assert!(!out.status.success(), "{relative} must fail");
        let name = script.file_name().expect("a name").to_string_lossy();
        golden(
            &format!("errors/{}", name.replace(".sql", ".txt")),
            &text(&out.stderr),
        );
    }
}

#[test]
fn the_example_etl_job_writes_partitioned_parquet() {
    let out = weir(&["run", "data/jobs/revenue_by_nation.sql"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stderr);
    assert!(summary.contains("files written"), "{summary}");
    // Read back with weir: one row per nation and year, 25 nations in each
    // of the 7 order years, and every year's partition directory present.
    let out = weir(&[
        "sql",
        "SELECT order_year, count(*) AS nations, sum(orders) AS orders FROM revenue GROUP BY order_year ORDER BY order_year",
        "--table",
        "revenue=target/example-output/revenue_by_nation",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "order_year,nations,orders");
    assert_eq!(lines.len(), 8, "{csv}");
    for (line, year) in lines[1..].iter().zip(1992..) {
        assert!(line.starts_with(&format!("{year},25,")), "{csv}");
    }
    for year in 1992..=1998 {
        let dir = root().join(format!(
            "target/example-output/revenue_by_nation/order_year={year}"
        ));
        assert!(dir.is_dir(), "{}", dir.display());
    }
    // The same totals straight from the sources, in one query.
    let tables = tpch_tables();
    let out = weir(&with_tables(
        &[
            "sql",
            "SELECT count(DISTINCT o_orderkey) AS orders FROM lineitem JOIN orders ON l_orderkey = o_orderkey WHERE l_returnflag <> 'R'",
            "--format",
            "csv",
        ],
        &tables,
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let direct: u64 = text(&out.stdout)
        .lines()
        .nth(1)
        .expect("a row")
        .parse()
        .expect("a count");
    let summed: u64 = lines[1..]
        .iter()
        .map(|l| {
            l.rsplit(',')
                .next()
                .expect("orders")
                .parse::<u64>()
                .expect("a count")
        })
        .sum();
    assert_eq!(summed, direct, "orders per year add up to all orders");
}

#[test]
fn sql_prints_tables_csv_and_json() {
    let query = "SELECT * FROM (VALUES (1, 'a'), (2, NULL)) AS t(x, y) ORDER BY x DESC";
    let out = weir(&["sql", query]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "+---+---+\n| x | y |\n+---+---+\n| 2 |   |\n| 1 | a |\n+---+---+\n"
    );
    let out = weir(&["sql", query, "--format", "csv"]);
    assert_eq!(text(&out.stdout), "x,y\n2,\n1,a\n");
    let out = weir(&["sql", query, "--format", "json"]);
    assert_eq!(text(&out.stdout), "[{\"x\":2},{\"x\":1,\"y\":\"a\"}]\n");
    assert!(
        text(&out.stderr).contains("2 row(s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn empty_results_still_show_their_columns() {
    let query = "SELECT * FROM (VALUES (1, 'a')) AS t(x, y) WHERE x > 1";
    let out = weir(&["sql", query, "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "x,y\n");
    let out = weir(&["sql", query, "--format", "json"]);
    assert_eq!(text(&out.stdout), "[]\n");
    let out = weir(&["sql", query]);
    assert_eq!(
        text(&out.stdout),
        "+---+---+\n| x | y |\n+---+---+\n+---+---+\n0 rows\n"
    );
    assert!(
        text(&out.stderr).contains("0 row(s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn expressions_that_differ_by_casts_are_columns_of_their_own() {
    // DataFusion names a cast as what it casts (its issue 18975): these
    // would be refused as duplicate names.
    let out = weir(&[
        "sql",
        "SELECT sum(x), sum(CAST(x AS DOUBLE)), avg(x), avg(CAST(x AS DOUBLE)), \
         sum(CAST(x AS BIGINT)) FROM (VALUES (1), (2)) AS t(x)",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "sum(t.x),sum(CAST(x AS DOUBLE)),avg(t.x),avg(CAST(x AS DOUBLE)),sum(CAST(x AS BIGINT))\n\
         3,3.0,1.5,1.5,3\n"
    );
    let out = weir(&[
        "sql",
        "SELECT k, sum(x) AS a, sum(CAST(x AS DOUBLE)) AS b FROM (VALUES (1, 1), (1, 2), (2, 5)) \
         AS t(k, x) GROUP BY k HAVING sum(CAST(x AS DOUBLE)) > 2.5 \
         ORDER BY sum(CAST(x AS DOUBLE)) DESC",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "k,a,b\n2,5,5.0\n1,3,3.0\n");
    let out = weir(&[
        "sql",
        "SELECT x, CAST(x AS DOUBLE) FROM (VALUES (1), (2)) AS t(x) ORDER BY x",
        "--format",
        "csv",
    ]);
    assert_eq!(text(&out.stdout), "x,CAST(x AS DOUBLE)\n1,1.0\n2,2.0\n");
}

#[test]
fn deeply_nested_generated_expressions_run() {
    // A 4,000-term OR chain (generated SQL) overflowed the stack.
    let terms: Vec<String> = (0..4000).map(|i| format!("x = {i}")).collect();
    let query = format!(
        "SELECT count(*) AS n FROM (VALUES (1), (2), (3999), (4000)) AS t(x) WHERE {}",
        terms.join(" OR ")
    );
    let out = weir(&["sql", &query, "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n\n3\n");
    // A 20,000-term sum aborted the process: now it is refused, saying
    // where and why.
    let terms = vec!["x"; 20_000];
    let query = format!(
        "SELECT {} AS s FROM (VALUES (1)) AS t(x)",
        terms.join(" + ")
    );
    let out = weir(&["sql", &query]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("nests more than 10000 levels deep"),
        "{stderr}"
    );
    assert!(stderr.contains("--> <command line>:1:"), "{stderr}");
}

#[test]
fn distinct_counts_over_subtasks_without_groups() {
    // At parallelism 4, two keys leave final aggregate subtasks without a
    // group; count(DISTINCT) of strings failed to give no states there.
    let query = "SELECT k, count(DISTINCT s) AS ds, count(DISTINCT n) AS dn, avg(n) AS a, \
                 max(n) AS m FROM (VALUES ('a', 'x', 1), ('a', 'y', 2), ('a', 'y', 2), \
                 ('b', 'x', 3)) AS t(k, s, n) GROUP BY k ORDER BY k";
    let out = weir(&["sql", query, "-p", "4", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "k,ds,dn,a,m\na,2,2,1.6666666666666667,2\nb,1,1,3.0,3\n"
    );
}

#[test]
fn a_decoder_panic_is_bad_input_and_stays_off_the_screen() {
    // One byte of lineitem's footer changed: a column chunk's length runs
    // past the file, and the parquet crate panics decoding it.
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("lineitem.parquet");
    let mut bytes = std::fs::read(root().join("data/tpch/sf0.01/lineitem.parquet")).expect("reads");
    bytes[1_924_178] = 136;
    std::fs::write(&file, bytes).expect("writes");
    let table = format!("t={}", file.display());
    let out = weir(&["sql", "--table", &table, "SELECT * FROM t"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad input") && stderr.contains("lineitem.parquet"),
        "{stderr}"
    );
    assert!(
        stderr.contains("malformed data: range end out of bounds"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked at") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn distinct_aggregates_spill() {
    // 150,000 distinct values in one global group, and 100,000 in each of
    // three: far more than 4 MiB of distinct sets, grouped and spilled.
    let dir = tempfile::tempdir().expect("a directory");
    let script = dir.path().join("distinct.sql");
    std::fs::write(
        &script,
        "SET 'memory.per-slot' = '4mb';
         CREATE TABLE numbers (id BIGINT) WITH ('connector' = 'datagen',
           'number-of-rows' = '300000', 'fields.id.kind' = 'sequence',
           'fields.id.start' = '0', 'fields.id.end' = '299999');
         SELECT count(DISTINCT id % 150000) AS d, count(*) AS n, sum(id) AS s FROM numbers;
         SELECT id % 3 AS k, count(DISTINCT id) AS d, max(id) AS m FROM numbers
         GROUP BY id % 3 ORDER BY k;",
    )
    .expect("writes");
    let out = weir(&["run", &script.display().to_string(), "--format", "csv"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        text(&out.stdout),
        "d,n,s\n150000,300000,44999850000\nk,d,m\n0,100000,299997\n1,100000,299998\n\
         2,100000,299999\n"
    );
    assert!(stderr.contains("spilled"), "{stderr}");
}

#[test]
fn volatile_functions_make_their_region_non_deterministic() {
    // A rerun of random() deals other values: the regions evaluating it
    // say so, and failover reruns the consumers that read them (rule 3).
    let explain = |select: &str| {
        let query = format!(
            "SET 'execution.batch-shuffle-mode' = 'all-blocking'; \
             SELECT k, count(*) AS n FROM (SELECT {select} AS k FROM (VALUES (1), (2), (3)) \
             AS t(x)) GROUP BY k"
        );
        let dir = tempfile::tempdir().expect("a directory");
        let script = dir.path().join("q.sql");
        std::fs::write(&script, query).expect("writes");
        let out = weir(&["explain", &script.display().to_string()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let random = explain("CAST(random() * 2 AS BIGINT)");
    assert!(random.contains("(non-deterministic)"), "{random}");
    let plain = explain("x % 2");
    assert!(!plain.contains("(non-deterministic)"), "{plain}");
}

#[test]
fn not_in_follows_three_valued_logic() {
    // DuckDB's answers (and SQL's): `x NOT IN (S)` is NULL when x is NULL
    // and S is not empty, or when S holds a NULL and no value equals x.
    let tables = tpch_tables();
    let cases = [
        // A NULL x against a subquery with rows.
        (
            "SELECT count(*) FROM region r RIGHT JOIN nation n ON r.r_regionkey = n.n_regionkey \
             AND n.n_regionkey > 10 WHERE r.r_regionkey NOT IN (SELECT n_regionkey FROM nation)",
            "0",
        ),
        // A NULL x against an empty subquery: kept.
        (
            "SELECT count(*) FROM (SELECT CASE WHEN n_nationkey > 100 THEN 1 END AS x \
             FROM nation) t WHERE x NOT IN (SELECT n_regionkey FROM nation \
             WHERE n_nationkey > 100)",
            "25",
        ),
        // A NULL among the subquery's values.
        (
            "SELECT count(*) FROM nation WHERE n_regionkey NOT IN \
             (SELECT CASE WHEN r_regionkey > 2 THEN r_regionkey END FROM region)",
            "0",
        ),
        (
            "SELECT count(*) FROM nation WHERE n_regionkey NOT IN \
             (SELECT r_regionkey FROM region WHERE r_regionkey > 2)",
            "15",
        ),
        // Correlated: the NULL counts among the rows of the same region.
        (
            "SELECT count(*) FROM nation n WHERE n_regionkey NOT IN \
             (SELECT CASE WHEN r_regionkey > 2 THEN r_regionkey END FROM region r \
             WHERE r.r_regionkey = n.n_regionkey)",
            "0",
        ),
        (
            "SELECT count(*) FROM nation n WHERE n_regionkey NOT IN \
             (SELECT CASE WHEN r_regionkey > 2 THEN r_regionkey END FROM region r \
             WHERE r.r_regionkey = n.n_regionkey + 1)",
            "15",
        ),
    ];
    for (query, count) in cases {
        let out = weir(&with_tables(
            &["sql", query, "-p", "3", "--format", "csv"],
            &tables,
        ));
        assert!(out.status.success(), "{query}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("count(*)\n{count}\n"), "{query}");
    }
}

#[test]
fn failures_that_would_repeat_are_not_restarted() {
    // A division by zero or a bad cast fails the same way every time: the
    // job fails at once instead of being restarted 3 times, saying why.
    for query in [
        "SELECT x / 0 FROM (VALUES (1)) AS t(x)",
        "SELECT CAST(s AS INT) FROM (VALUES ('abc')) AS t(s)",
    ] {
        let out = weir(&["sql", query]);
        assert!(!out.status.success(), "{query}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("failed after 0 restart(s)"), "{stderr}");
        assert!(
            stderr.contains("not restarted: the failure follows from the data and the query"),
            "{stderr}"
        );
        // No rows were printed: no empty table either.
        assert_eq!(text(&out.stdout), "", "{query}");
    }
}

#[test]
fn mod_is_the_remainder_operator() {
    let query = "SELECT x, y, MOD(x, y) AS m, MOD(x, y) = x % y AS same, MOD(x, 2.5) AS d \
                 FROM (VALUES (7, 3), (-7, 3), (7, -3), (NULL, 3), (7, NULL)) AS t(x, y)";
    let out = weir(&["sql", query, "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "x,y,m,same,d\n7,3,1,true,2.0\n-7,3,-1,true,-2.0\n7,-3,1,true,2.0\n,3,,,\n7,,,,2.0\n"
    );
    let out = weir(&["sql", "SELECT MOD(x, 0) FROM (VALUES (1)) AS t(x)"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Divide by zero"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sql_runs_a_script_then_the_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("tables.sql");
    std::fs::write(
        &script,
        "CREATE TABLE nation WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/nation.parquet');\n\
         CREATE VIEW asia AS SELECT n_name FROM nation WHERE n_regionkey = 2",
    )
    .expect("writes");
    let out = weir(&[
        "sql",
        "-f",
        script.to_str().expect("utf-8"),
        "SELECT n_name FROM asia ORDER BY n_name",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "n_name\nCHINA\nINDIA\nINDONESIA\nJAPAN\nVIETNAM\n"
    );
}

#[test]
fn settings_come_from_file_environment_flags_and_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "[parallelism]\ndefault = 3\n").expect("writes");
    // The parallelism `explain` gives the first vertex of `script`'s job.
    let explain = |script: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "explain",
            script,
            "--format",
            "json",
            "--table",
            "lineitem=data/tpch/sf0.01/lineitem.parquet",
        ];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(&args)
            .current_dir(root())
            .env_remove("WEIR_CONFIG")
            .envs(env.iter().copied())
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        plan["graph"]["vertices"][0]["parallelism"]
            .as_u64()
            .expect("a parallelism")
    };
    let q06 = "data/tpch/queries/q06.sql";
    let file = config.to_str().expect("utf-8");
    let env = [("WEIR_PARALLELISM_DEFAULT", "2")];
    assert_eq!(explain(q06, &["--config", file], &[]), 3);
    assert_eq!(explain(q06, &[], &[("WEIR_CONFIG", file)]), 3);
    assert_eq!(explain(q06, &["--config", file], &env), 2);
    assert_eq!(explain(q06, &["--config", file, "-p", "4"], &env), 4);
    // The script's SET overrides every source before it.
    let with_set = dir.path().join("set.sql");
    let query = std::fs::read_to_string(root().join(q06)).expect("q06");
    std::fs::write(
        &with_set,
        format!("SET 'parallelism.default' = '1';\n{query}"),
    )
    .expect("writes");
    let with_set = with_set.to_str().expect("utf-8");
    assert_eq!(explain(with_set, &["--config", file, "-p", "4"], &env), 1);
}

#[test]
fn datagen_print_and_blackhole_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("gen.sql");
    std::fs::write(
        &script,
        "CREATE TABLE numbers (id BIGINT, grp INT) WITH (\n\
         \x20   'connector' = 'datagen', 'number-of-rows' = '1000',\n\
         \x20   'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000',\n\
         \x20   'fields.grp.min' = '0', 'fields.grp.max' = '3');\n\
         CREATE TABLE out WITH ('connector' = 'print', 'print-identifier' = 'sums');\n\
         CREATE TABLE nowhere WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT count(*) AS n, sum(id) AS total FROM numbers;\n\
         INSERT INTO nowhere SELECT * FROM numbers WHERE grp = 1;\n",
    )
    .expect("writes");
    let out = weir(&["run", script.to_str().expect("utf-8"), "-p", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("sums> +I[1000, 500500]"), "{stdout}");
    let summary = text(&out.stderr);
    assert!(
        summary.contains("rows written"),
        "the summary counts: {summary}"
    );
}

/// A script whose query runs about 3 s: a throttled generator, grouped.
fn slow_script(dir: &Path) -> PathBuf {
    let script = dir.join("slow.sql");
    std::fs::write(
        &script,
        "CREATE TABLE numbers (id BIGINT, grp INT) WITH (\n\
         \x20   'connector' = 'datagen', 'number-of-rows' = '3000', 'rows-per-second' = '1000',\n\
         \x20   'fields.grp.min' = '0', 'fields.grp.max' = '3');\n\
         SELECT grp, count(*) AS n FROM numbers GROUP BY grp ORDER BY grp;\n",
    )
    .expect("writes");
    script
}

#[test]
fn progress_is_logged_without_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = slow_script(dir.path());
    let script = script.to_str().expect("utf-8");
    let out = weir(&["run", script, "-p", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("rows read")).collect();
    assert!(
        lines.len() >= 2,
        "a line at 1 s and one per region: {stderr}"
    );
    let mut read_before = 0;
    for line in &lines {
        assert!(line.contains("regions done"), "{line}");
        let counts = line
            .split(" rows read")
            .next()
            .and_then(|head| head.rsplit(", ").next())
            .expect("a count of rows");
        let (read, rest) = counts.split_once(" of ").expect("read of expected");
        let read: u64 = read.parse().expect("a number");
        assert_eq!(rest, "3000", "{line}");
        assert!(read_before <= read && read <= 3000, "{line}");
        read_before = read;
    }
    assert!(
        text(&out.stdout).contains("| grp |"),
        "{}",
        text(&out.stdout)
    );

    let quiet = weir(&["run", script, "-p", "2", "--progress", "none"]);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert!(!text(&quiet.stderr).contains("rows read"));
}

#[test]
fn progress_is_a_bar_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = slow_script(dir.path());
    // `script` runs the command on a pseudo-terminal and copies what it
    // writes there (standard output and error both) to its own output.
    let command = format!(
        "{} run {} -p 2",
        env!("CARGO_BIN_EXE_weir"),
        script.display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(root())
        .env("TERM", "xterm")
        .env_remove("WEIR_CONFIG")
        .output()
        .expect("script runs");
    let terminal = text(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(terminal.contains("rows read"), "{terminal}");
    assert!(terminal.contains("regions done"), "{terminal}");
    assert!(
        terminal.contains("/3,000 rows read"),
        "the bar counts of the expected rows: {terminal}"
    );
    // The bar redraws in place and is cleared before the summary.
    assert!(
        terminal.contains('\r') || terminal.contains("\x1b["),
        "{terminal}"
    );
    assert!(
        !terminal.contains("] job '"),
        "no log lines on a terminal: {terminal}"
    );
    assert!(
        terminal.contains("job '"),
        "the summary follows: {terminal}"
    );
}
