//! The SQL front end: scripts of statements parsed and planned with
//! DataFusion's SQL planner, optimized with a chosen set of its logical
//! rules, and translated into weir job graphs.

mod cast_names;
mod catalog;
mod depth;
mod distinct_groups;
mod error;
mod event_time;
mod flink_syntax;
mod modulo;
mod optimize;
mod session;
mod set_operations;
mod translate;
mod window_tvf;

pub use catalog::TableDef;
pub use error::SqlError;
pub use session::{Insert, Query, QueryJob, Script, Session};
