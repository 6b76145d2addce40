//! The baseline: raw HTTP/1.1 replay of one prepared request over keep-alive connections —
//! what `wrk` does, with no client library at all: write the same bytes, read the reply by its
//! `Content-Length`, repeat. A request may be a pool of prepared variants (the same request
//! with fresh ids, signed in advance): each connection then cycles through the pool from its
//! own starting point, so the server sees what a real client sends — new ids every call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request (or a pool of variants of it), as bytes on the wire.
#[derive(Clone)]
pub(crate) struct RawRequest {
    addr: SocketAddr,
    /// Never empty; one entry for a request repeated as is.
    pool: Arc<[Vec<u8>]>,
}

impl RawRequest {
    /// `POST path` to `addr` with these headers and this JSON body.
    pub(crate) fn post_json(addr: SocketAddr, path: &str, bearer: &str, body: &[u8]) -> RawRequest {
        RawRequest::post_json_pool(addr, path, bearer, std::slice::from_ref(&body.to_vec()))
    }

    /// `POST path` to `addr`, one request per body of `bodies` (at least one), sent in turn.
    pub(crate) fn post_json_pool(
        addr: SocketAddr,
        path: &str,
        bearer: &str,
        bodies: &[Vec<u8>],
    ) -> RawRequest {
        assert!(!bodies.is_empty(), "a raw request needs at least one body");
        let pool = bodies
            .iter()
            .map(|body| {
                let mut bytes = format!(
                    "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\
                     Content-Type: application/json\r\nAccept: application/json\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                bytes.extend_from_slice(body);
                bytes
            })
            .collect();
        RawRequest { addr, pool }
    }
}

/// What a load run counted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    /// Replies with a 2xx status.
    pub(crate) ok: u64,
    /// Anything else (non-2xx, connection errors).
    pub(crate) errors: u64,
    /// Of the errors, replies 503 (admission control's refusal).
    pub(crate) unavailable: u64,
    /// Latency of each 2xx reply, microseconds (write to last byte).
    pub(crate) latencies_us: Vec<u32>,
}

/// Replays `req` on `connections` keep-alive connections until `duration` has passed.
pub(crate) async fn replay(req: &RawRequest, connections: usize, duration: Duration) -> Counts {
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for i in 0..connections {
        let req = req.clone();
        // Spread the connections over the pool, so that no two send the same variant at once.
        let mut next = i * req.pool.len() / connections.max(1);
        tasks.push(tokio::spawn(async move {
            let mut c = Counts::default();
            let mut conn: Option<TcpStream> = None;
            let mut buf = Vec::with_capacity(64 * 1024);
            while Instant::now() < until {
                let stream = match &mut conn {
                    Some(s) => s,
                    None => match TcpStream::connect(req.addr).await {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            conn.insert(s)
                        }
                        Err(_) => {
                            c.errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let bytes = &req.pool[next % req.pool.len()];
                next = next.wrapping_add(1);
                let t0 = Instant::now();
                match one(stream, bytes, &mut buf).await {
                    Ok(status) if (200..300).contains(&status) => {
                        c.ok += 1;
                        c.latencies_us
                            .push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(status) => {
                        c.errors += 1;
                        if status == 503 {
                            c.unavailable += 1;
                            // As a well-behaved client does with `Retry-After`, but briefly:
                            // the load stays at `connections` callers.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(_) => {
                        c.errors += 1;
                        conn = None;
                    }
                }
            }
            c
        }));
    }
    let mut total = Counts::default();
    for t in tasks {
        if let Ok(c) = t.await {
            total.ok += c.ok;
            total.errors += c.errors;
            total.unavailable += c.unavailable;
            total.latencies_us.extend(c.latencies_us);
        }
    }
    total
}

/// Sends one request and reads its reply; the status code.
async fn one(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let (head_end, status, length) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| std::io::Error::other("no status"))?;
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| std::io::Error::other("no content-length"))?;
            break (end + 4, status, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
