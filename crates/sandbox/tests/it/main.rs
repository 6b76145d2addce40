//! Integration tests: an in-process sandbox on an ephemeral port, driven over real HTTP.

mod admin;
mod async_calls;
mod bounds;
mod common;
mod conformance;
mod faults;
mod lost_reply;
mod population;
mod redelivery;
mod search;
mod token;
