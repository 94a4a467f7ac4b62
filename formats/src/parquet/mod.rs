//! Parquet: narrowing what a scan reads with its filters.
//!
//! [`PruningPlan`] prepares a scan's filters once; for each file it then
//! picks the row groups to read from their statistics
//! ([`PruningPlan::row_groups`]), the rows of those from the page index
//! ([`PruningPlan::page_selection`]), and builds the row filter the reader
//! applies while decoding ([`PruningPlan::row_filter`]). Everything here is
//! pure: it reads metadata already loaded.

mod casts;
mod evaluate;
mod page_prune;
pub mod plan;
mod predicate;
pub mod prune;
mod row_filter;
mod statistics;

pub use plan::PruningPlan;
pub use prune::RowGroups;

#[cfg(test)]
mod testkit;
