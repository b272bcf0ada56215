//! The library half of rockraft-ctl: what the command line, the benchmarks and the test
//! harness share.

pub mod auth;
pub mod members;
