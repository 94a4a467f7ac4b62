//! End-to-end tests of the `weir` command line.

use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("weir runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn run_wordcount_prints_results_and_a_summary() {
    let out = weir(&[
        "run",
        "wordcount",
        "-p",
        "2",
        "-D",
        "shuffle.root=memory://",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("| the   | 42    |"), "{text}");
    // Rows go to standard output, the summary to standard error.
    let summary = stderr(&out);
    assert!(!text.contains("finished in"), "{text}");
    assert!(summary.contains("job 'wordcount' finished in"), "{summary}");
    assert!(
        summary.contains("4 region(s), lazy-topological scheduling"),
        "{summary}"
    );
    assert!(summary.contains("every subtask ran once"), "{summary}");
}

#[test]
fn shuffle_modes_and_formats_give_the_same_counts() {
    let mut results = Vec::new();
    for options in [
        vec!["-D", "execution.batch-shuffle-mode=all-blocking"],
        vec!["-D", "execution.batch-shuffle-mode=all-pipelined"],
        vec![
            "-D",
            "shuffle.format=parquet",
            "-D",
            "shuffle.compression=zstd",
        ],
        vec![
            "-D",
            "shuffle.compression=lz4",
            "-D",
            "pipeline.operator-chaining=false",
        ],
    ] {
        let mut args = vec![
            "run", "numbers", "--rows", "50000", "-p", "2", "--top", "1000",
        ];
        args.extend(options);
        let out = weir(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        let table: String = text
            .lines()
            .take_while(|l| !l.starts_with("job "))
            .collect::<Vec<_>>()
            .join("\n");
        results.push(table);
    }
    assert!(
        results[0].contains("top 1000 of 1000 result rows"),
        "{}",
        results[0]
    );
    assert!(results.iter().all(|r| *r == results[0]));
}

#[test]
fn explain_json_lists_vertices_edges_and_regions() {
    let out = weir(&["explain", "wordcount", "-p", "2", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let explained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        explained["logical_plan"].is_null(),
        "a built-in job has no SQL"
    );
    let plan = &explained["graph"];
    assert_eq!(plan["vertices"].as_array().unwrap().len(), 2);
    let edge = &plan["edges"][0];
    assert_eq!(edge["partitioner"], "hash(word)");
    assert_eq!(edge["mode"], "blocking");
    assert_eq!(plan["subtasks"], 4);
    let regions: Vec<Vec<String>> = plan["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["subtasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        regions,
        vec![vec!["v0.0"], vec!["v0.1"], vec!["v1.0"], vec!["v1.1"]]
    );
    let pipelined = weir(&[
        "explain",
        "wordcount",
        "-p",
        "2",
        "--format",
        "json",
        "-D",
        "execution.batch-shuffle-mode=all-pipelined",
    ]);
    let plan: serde_json::Value = serde_json::from_slice(&pipelined.stdout).unwrap();
    assert_eq!(plan["graph"]["regions"].as_array().unwrap().len(), 1);
}

#[test]
fn explain_text_shows_the_three_sections() {
    let out = weir(&["explain", "numbers", "-p", "3"]);
    let text = stdout(&out);
    for section in [
        "== JobGraph: numbers",
        "== ExecutionGraph (6 subtasks)",
        "== Pipelined regions (6)",
    ] {
        assert!(text.contains(section), "{text}");
    }
    assert!(text.contains("v0 -> v1  hash(key)  blocking"), "{text}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = weir(&["run", "nosuchjob"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown job 'nosuchjob' (built-in jobs: wordcount, numbers)"));
    let out = weir(&["run", "numbers", "-D", "shuffle.formt=ipc"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown option 'shuffle.formt'"),
        "{}",
        stderr(&out)
    );
    let out = weir(&["run", "wordcount", "--input", "data/no-such-dir"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("data/no-such-dir"),
        "{}",
        stderr(&out)
    );
    let out = weir(&[
        "run",
        "numbers",
        "-D",
        "worker.slots=1",
        "-D",
        "execution.batch-shuffle-mode=all-pipelined",
        "-p",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs 2 slot(s), but the cluster has 1"),
        "{}",
        stderr(&out)
    );
}
