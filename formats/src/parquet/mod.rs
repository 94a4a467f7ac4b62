//! Parquet tables: the `parquet` connector ([`ParquetConnector`]), its
//! source ([`ParquetSource`], by row group, with pushdown) and its file
//! format for the file sink ([`ParquetFormat`]).
//!
//! Narrowing what a scan reads with its filters:
//! [`PruningPlan`] prepares a scan's filters once; for each file it then
//! picks the row groups to read from their statistics
//! ([`PruningPlan::row_groups`]), the rows of those from the page index
//! ([`PruningPlan::page_selection`]), and builds the row filter the reader
//! applies while decoding ([`PruningPlan::row_filter`]). Everything here is
//! pure: it reads metadata already loaded.

mod casts;
mod connector;
mod evaluate;
mod page_prune;
pub mod plan;
mod predicate;
pub mod prune;
mod row_filter;
mod sink;
mod source;
mod statistics;

pub use connector::ParquetConnector;
pub use plan::PruningPlan;
pub use prune::RowGroups;
pub use sink::{PARQUET_SINK_OPTIONS, ParquetFormat};
pub use source::ParquetSource;

#[cfg(test)]
mod testkit;
