//! What the exchange tests share: the batches they send and write.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

/// Rows in each [`batch`].
pub const ROWS: i64 = 4096;

/// Batch `n`: 4,096 rows of ids and 16-character names.
pub fn batch(n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let ids: Vec<i64> = (0..ROWS).map(|i| n * ROWS + i).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("name-{i:011}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .expect("a batch")
}
