//! # dci-server
//!
//! `dci serve`: the admin console, the JSON gateway API and the callback receiver.
//!
//! Owns: HTTP serving. Does not own: client behaviour (`dci-client`) or storage (`dci-store`).
