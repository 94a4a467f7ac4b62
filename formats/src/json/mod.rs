//! JSON lines: one JSON object per line. Schema inference, and the decoder
//! and encoder the file source and sink call. Pure: bytes in, batches out,
//! and back.
//!
//! Lines are split at `\n` (a `\r` before it is dropped); lines of only
//! whitespace are skipped. A line that is not one JSON object, or whose
//! values do not fit the schema, is a bad record; fields not in the schema
//! are ignored, fields missing from a line are null.

mod connector;
mod decode;
mod encode;
mod infer;
mod lines;

pub use connector::{JsonConnector, JsonFormat};
pub use decode::JsonDecoder;
pub use encode::JsonEncoder;
pub use infer::infer_schema;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
