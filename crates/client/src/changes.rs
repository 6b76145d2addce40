//! The change feed: what a store tells its readers changed, so that waits wake and the engine
//! drops a changed data source at once instead of polling the store.
//!
//! A store publishes a [`Change`] after each change commits ([`ChangeHub::publish`]); readers
//! take a [`Changes`] ([`crate::OpsStore::changes`]) and await [`Changes::next`]. A feed is
//! *shared* when it carries the changes of every process on the database (PostgreSQL's
//! `LISTEN/NOTIFY`); an in-process feed (SQLite) misses what another process did, so its
//! readers keep polling as well.
//!
//! Owns: the shape of a change and the in-process fan-out. Does not own: how changes cross
//! processes (the store does that).

use tokio::sync::broadcast;

/// How many changes a slow reader may fall behind before it is told to re-read everything.
const CAPACITY: usize = 1024;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A stored transaction (its state or its callbacks), by transaction id.
    Transaction(String),
    /// A data source's record (changed, created or deleted), by code.
    Source(String),
    /// Changes may have been missed (the reader fell behind, or the feed's connection to the
    /// database was lost and made again): re-read whatever is waited on or cached.
    Resync,
}

impl Change {
    /// The change as one line of text (`t <id>`, `s <code>`, `*`), for carrying it between
    /// processes.
    pub fn encode(&self) -> String {
        match self {
            Change::Transaction(id) => format!("t {id}"),
            Change::Source(code) => format!("s {code}"),
            Change::Resync => "*".to_owned(),
        }
    }

    /// Reads [`Change::encode`]'s text; anything unknown reads as [`Change::Resync`].
    pub fn decode(s: &str) -> Change {
        match s.split_once(' ') {
            Some(("t", id)) => Change::Transaction(id.to_owned()),
            Some(("s", code)) => Change::Source(code.to_owned()),
            _ => Change::Resync,
        }
    }
}

/// The sending side, held by a store: every [`Changes`] it hands out sees what it publishes.
#[derive(Debug)]
pub struct ChangeHub {
    tx: broadcast::Sender<Change>,
    shared: bool,
}

impl ChangeHub {
    /// A hub whose feeds are shared (they see every process's changes) or in-process only.
    pub fn new(shared: bool) -> ChangeHub {
        ChangeHub {
            tx: broadcast::channel(CAPACITY).0,
            shared,
        }
    }

    /// Tells every current reader. Nobody listening is fine.
    pub fn publish(&self, change: Change) {
        let _ = self.tx.send(change);
    }

    /// A new reader; it sees changes published from now on.
    pub fn subscribe(&self) -> Changes {
        Changes {
            rx: self.tx.subscribe(),
            shared: self.shared,
        }
    }
}

/// One reader of a store's changes.
#[derive(Debug)]
pub struct Changes {
    rx: broadcast::Receiver<Change>,
    shared: bool,
}

impl Changes {
    /// Whether this feed carries the changes of every process on the database (else only this
    /// process's: a reader must still poll to see another process's).
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// The next change; [`Change::Resync`] if this reader fell behind; `None` once the store
    /// is gone.
    pub async fn next(&mut self) -> Option<Change> {
        match self.rx.recv().await {
            Ok(c) => Some(c),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next change if one is already there (never waits); [`Change::Resync`] if this
    /// reader fell behind.
    pub fn try_next(&mut self) -> Option<Change> {
        match self.rx.try_recv() {
            Ok(c) => Some(c),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Change::Resync),
            Err(_) => None,
        }
    }

    /// Returns once `transaction_id` changed (or a resync asks everyone to look again).
    /// Pending for ever once the store is gone: the caller's own timeout ends the wait.
    pub async fn transaction(&mut self, transaction_id: &str) {
        loop {
            match self.next().await {
                Some(Change::Transaction(id)) if id == transaction_id => return,
                Some(Change::Resync) => return,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        for c in [
            Change::Transaction("t-1 x".into()),
            Change::Source("crvs_main".into()),
            Change::Resync,
        ] {
            assert_eq!(Change::decode(&c.encode()), c);
        }
        assert_eq!(Change::decode("garbage"), Change::Resync);
    }

    #[tokio::test]
    async fn a_slow_reader_is_told_to_resync() {
        let hub = ChangeHub::new(false);
        let mut r = hub.subscribe();
        for i in 0..CAPACITY + 5 {
            hub.publish(Change::Transaction(i.to_string()));
        }
        assert_eq!(r.next().await, Some(Change::Resync));
        assert!(!r.shared());
    }
}
