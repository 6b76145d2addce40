//! DCI operations against the real sandbox over HTTP, with callbacks delivered to a test
//! receiver that calls `ingest`, and the real SQLite store. Every envelope sent is validated
//! against the official request schema.

mod asynchronous;
mod fault_storm;
mod fuzz;
mod inbound;
mod lost_reply;
mod recovery;
mod signatures;
mod support;
mod synchronous;
