//! Event time: which column holds a record's time, and the watermarks a
//! source derives from it.
//!
//! A source vertex with a [`WatermarkStrategy`] gets a
//! [`WatermarkGenerator`] in each of its tasks. The generator follows the
//! largest event time of each split the task reads and emits the minimum
//! over its splits, less the bounded out-of-orderness, as the task's
//! watermark (Flink's `forBoundedOutOfOrderness`). A split that produces
//! nothing for the idle timeout goes idle and stops holding the watermark
//! back; a task whose splits are all idle sends
//! [`WatermarkStatus::Idle`](weir_exchange::event::WatermarkStatus) so that
//! its consumers leave it out of their minimum too.
//!
//! Event times are milliseconds since the epoch: a column of any
//! `TIMESTAMP` unit is converted, a `BIGINT` column is taken as
//! milliseconds.

mod generator;

use std::fmt;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::{cast, max};
use arrow::datatypes::{DataType, Int64Type, Schema, TimeUnit};

use crate::{Error, Result};

pub use generator::{WatermarkGenerator, WatermarkUpdate};

/// How a source's watermarks follow its event times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkStrategy {
    /// The column holding each record's event time.
    pub column: String,
    /// How far the watermark trails the largest event time seen: records up
    /// to this much older than the newest one are still on time.
    pub max_out_of_orderness: Duration,
    /// A split that produces nothing for this long goes idle (`None`:
    /// never).
    pub idle_timeout: Option<Duration>,
}

impl WatermarkStrategy {
    /// Watermarks `max_out_of_orderness` behind the largest time in
    /// `column`, without an idle timeout.
    pub fn bounded_out_of_orderness(
        column: impl Into<String>,
        max_out_of_orderness: Duration,
    ) -> Self {
        Self {
            column: column.into(),
            max_out_of_orderness,
            idle_timeout: None,
        }
    }

    /// The same strategy with splits going idle after `timeout`.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The position of the time column in `schema`.
    ///
    /// # Errors
    /// [`Error::Plan`] when the column is missing or not a time.
    pub fn column_index(&self, schema: &Schema) -> Result<usize> {
        let index = schema.index_of(&self.column).map_err(|_| {
            Error::Plan(format!(
                "the watermark's time column '{}' is not a column of the source (columns: {})",
                self.column,
                crate::expr::column_list(schema)
            ))
        })?;
        check_time_type(&self.column, schema.field(index).data_type())?;
        Ok(index)
    }
}

impl fmt::Display for WatermarkStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "watermark({} - {} ms",
            self.column,
            self.max_out_of_orderness.as_millis()
        )?;
        if let Some(idle) = self.idle_timeout {
            write!(f, ", idle after {} ms", idle.as_millis())?;
        }
        f.write_str(")")
    }
}

/// Checks that `data_type` can hold event times.
///
/// # Errors
/// [`Error::Plan`] naming `column` when it cannot.
pub fn check_time_type(column: &str, data_type: &DataType) -> Result<()> {
    match data_type {
        DataType::Timestamp(_, _) | DataType::Int64 => Ok(()),
        other => Err(Error::Plan(format!(
            "column '{column}' is {other}, not a time: event time needs a TIMESTAMP \
             (or a BIGINT of milliseconds)"
        ))),
    }
}

/// The event times of `array` in milliseconds since the epoch.
///
/// # Errors
/// When the column is not a time (see [`check_time_type`]).
pub fn event_times_ms(array: &ArrayRef) -> Result<Int64Array> {
    let millis = match array.data_type() {
        DataType::Int64 => return Ok(array.as_primitive::<Int64Type>().clone()),
        DataType::Timestamp(TimeUnit::Millisecond, None) => std::sync::Arc::clone(array),
        DataType::Timestamp(_, _) => {
            cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?
        }
        other => {
            return Err(Error::Plan(format!(
                "event times must be TIMESTAMP or BIGINT, not {other}"
            )));
        }
    };
    Ok(cast(&millis, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// The largest event time in `array`, if it has a non-null value.
///
/// # Errors
/// When the column is not a time.
pub fn max_event_time(array: &ArrayRef) -> Result<Option<i64>> {
    let times = event_times_ms(array)?;
    Ok(if times.null_count() == times.len() {
        None
    } else {
        max(&times)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{StringArray, TimestampMicrosecondArray};

    use super::*;

    #[test]
    fn event_times_are_milliseconds_of_any_unit() {
        let micros: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_500_000), None, Some(2_999)])
                .with_timezone("UTC"),
        );
        let ms = event_times_ms(&micros).expect("converts");
        assert_eq!(
            ms.iter().collect::<Vec<_>>(),
            vec![Some(1500), None, Some(2)]
        );
        assert_eq!(max_event_time(&micros).expect("max"), Some(1500));
        let plain: ArrayRef = Arc::new(Int64Array::from(vec![7, 3]));
        assert_eq!(max_event_time(&plain).expect("max"), Some(7));
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        assert_eq!(max_event_time(&nulls).expect("max"), None);
        let text: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        assert!(event_times_ms(&text).is_err());
    }

    #[test]
    fn the_time_column_must_exist_and_be_a_time() {
        let schema = Schema::new(vec![
            arrow::datatypes::Field::new("name", DataType::Utf8, true),
            arrow::datatypes::Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
        ]);
        let strategy = |c: &str| WatermarkStrategy::bounded_out_of_orderness(c, Duration::ZERO);
        assert_eq!(strategy("ts").column_index(&schema).expect("found"), 1);
        let missing = strategy("time").column_index(&schema).expect_err("missing");
        assert!(
            missing
                .to_string()
                .contains("'time' is not a column of the source (columns: name, ts)"),
            "{missing}"
        );
        let text = strategy("name").column_index(&schema).expect_err("text");
        assert!(text.to_string().contains("not a time"), "{text}");
    }
}
