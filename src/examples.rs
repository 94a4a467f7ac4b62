//! Built-in example jobs, runnable by name until SQL scripts arrive.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{AsArray, RecordBatch, StringBuilder};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_engine::dataframe::Dataflow;
use weir_engine::expr::aggregate::count;
use weir_engine::expr::{col, lit};
use weir_engine::graph::JobBuilder;
use weir_engine::operators::{AggregateMode, HashAggregate, MapBatches};
use weir_engine::registry::ConnectorOptions;
use weir_engine::sinks::{CollectSink, Collected};
use weir_engine::sources::SequenceGenerator;

/// An example job: its builder and where its output is collected.
pub struct ExampleJob {
    pub builder: JobBuilder,
    pub output: Collected,
    /// The columns to rank the output by (descending) when printing.
    pub rank_by: &'static str,
}

/// The names and descriptions of the examples.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "wordcount",
        "counts the words of the text files under --input (default data/text): \
         text -> tokenize -> partial count -> hash(word) shuffle -> final count",
    ),
    (
        "numbers",
        "generates --rows numbered rows over 1000 keys, keeps values below 500 and \
         counts rows per key across a hash(key) shuffle",
    ),
];

/// Builds example `name`.
pub async fn build(
    name: &str,
    input: Option<&str>,
    rows: u64,
    parallelism: usize,
) -> Result<ExampleJob> {
    match name {
        "wordcount" => wordcount(input.unwrap_or("data/text"), parallelism).await,
        "numbers" => numbers(rows, parallelism),
        other => {
            let names: Vec<_> = EXAMPLES.iter().map(|(n, _)| *n).collect();
            bail!(
                "unknown job '{other}' (built-in jobs: {})",
                names.join(", ")
            )
        }
    }
}

async fn wordcount(input: &str, parallelism: usize) -> Result<ExampleJob> {
    let registry = weir_formats::registry();
    let options = ConnectorOptions::from([("path".to_string(), input.to_string())]);
    let text = registry
        .source("text", &options, None)
        .await
        .with_context(|| format!("cannot read the input of wordcount at '{input}'"))?;
    let mut job = JobBuilder::new("wordcount").with_parallelism(parallelism);
    let lines = job.source(text);
    let words = job.operator(
        Arc::new(MapBatches::new("tokenize", Arc::new(tokenize))),
        [lines.forward()],
    );
    let words_schema = word_schema();
    let partial = job.operator(
        count_per(AggregateMode::Partial, &words_schema, "word")?,
        [words.forward()],
    );
    let counts = job.operator(
        count_per(AggregateMode::Final, &words_schema, "word")?,
        [partial.hash(["word"])],
    );
    let (sink, output) = CollectSink::new();
    job.sink(Arc::new(sink), [counts.forward()]);
    Ok(ExampleJob {
        builder: job,
        output,
        rank_by: "count",
    })
}

/// Splits lines into lower-case words (runs of letters, digits and `'`).
fn tokenize(batch: &RecordBatch) -> weir_engine::Result<RecordBatch> {
    let lines = batch.column(0).as_string::<i32>();
    let mut words = StringBuilder::new();
    let mut word = String::new();
    for line in lines.iter().flatten() {
        for c in line.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() || c == '\'' {
                word.extend(c.to_lowercase());
            } else if !word.is_empty() {
                words.append_value(word.trim_matches('\''));
                word.clear();
            }
        }
    }
    let schema = word_schema();
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(words.finish())],
    )?)
}

fn numbers(rows: u64, parallelism: usize) -> Result<ExampleJob> {
    let flow = Dataflow::new("numbers").with_parallelism(parallelism);
    let (sink, output) = CollectSink::new();
    flow.read(Arc::new(SequenceGenerator::new(Some(rows), 1000)))
        .filter(col("value").lt(lit(500i64)))?
        .aggregate(vec![col("key")], vec![count(lit(1)).alias("count")])?
        .write(Arc::new(sink));
    Ok(ExampleJob {
        builder: flow.builder(),
        output,
        rank_by: "count",
    })
}

/// The `top` rows of `batches`, by column `rank_by` descending, then by the
/// first column ascending.
pub fn top_rows(batches: &[RecordBatch], rank_by: &str, top: usize) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = arrow::compute::concat_batches(&first.schema(), batches)?;
    let rank = all.column(all.schema().index_of(rank_by)?);
    let columns = [
        SortColumn {
            values: Arc::clone(rank),
            options: Some(SortOptions {
                descending: true,
                nulls_first: false,
            }),
        },
        SortColumn {
            values: Arc::clone(all.column(0)),
            options: None,
        },
    ];
    let indices = lexsort_to_indices(&columns, Some(top))?;
    Ok(Some(take_record_batch(&all, &indices)?))
}

/// The schema of tokenized words: one `word` column.
fn word_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, false)]))
}

/// Counts rows per `key` (output `key`, `count`) of rows of `input`, in
/// `mode`; the final phase reads what the partial one emits.
fn count_per(mode: AggregateMode, input: &SchemaRef, key: &str) -> Result<Arc<HashAggregate>> {
    Ok(Arc::new(HashAggregate::try_new(
        mode,
        input,
        vec![(col(key), key.to_string())],
        vec![(count(lit(1)), "count".to_string())],
    )?))
}
