//! CSV: the dialect options, schema inference, and the decoder and encoder
//! the file source and sink call. Pure: bytes in, batches out, and back.
//!
//! Line numbers count `\n` bytes from the start of the file, so a record
//! whose quoted field holds line breaks takes several lines and the next
//! record's line number counts them.

mod connector;
mod decode;
mod encode;
mod infer;
mod options;
mod records;
mod values;

pub use connector::{CsvConnector, CsvFormat};
pub use decode::CsvDecoder;
pub use encode::CsvEncoder;
pub use infer::infer_schema;
pub use options::CsvOptions;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop_tests;
