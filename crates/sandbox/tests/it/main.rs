//! Integration tests: an in-process sandbox on an ephemeral port, driven over real HTTP.

mod admin;
mod async_calls;
mod common;
mod conformance;
mod faults;
mod search;
mod token;
