//! One module per subcommand.

pub(crate) mod completions;
pub(crate) mod config;
pub(crate) mod crvs;
pub(crate) mod demo;
pub(crate) mod dr;
pub(crate) mod envelope;
pub(crate) mod events;
pub(crate) mod fr;
pub(crate) mod ibr;
pub(crate) mod key;
pub(crate) mod log;
pub(crate) mod man;
pub(crate) mod master_key;
pub(crate) mod purge;
pub(crate) mod sandbox;
pub(crate) mod search;
pub(crate) mod serve;
pub(crate) mod social;
pub(crate) mod source;
pub(crate) mod subscribe;
pub(crate) mod test_connection;
pub(crate) mod token;
pub(crate) mod txn_status;
pub(crate) mod webhook;
