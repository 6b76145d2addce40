//! Integration tests of dci-client over real HTTP (wiremock, a TLS listener, the sandbox).
//! One binary so the test suite links once.

mod auth;
mod errors;
mod retries;
mod sandbox;
mod support;
mod test_connection;
