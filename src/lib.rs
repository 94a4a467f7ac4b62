//! `weir`: the command-line job runner and SQL front end of the weir
//! dataflow engine. The SQL front end ([`sql`]) turns scripts of
//! statements into job graphs that the scheduler runs.

pub mod config;
pub mod sql;
