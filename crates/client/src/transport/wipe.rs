//! Secret bytes handed to reqwest that are wiped when reqwest lets go of them: the
//! `Authorization` header of every call (a bearer token, a Basic password) and the body of an
//! OAuth2 token request (the client secret). reqwest and hyper keep what they are given in
//! [`bytes::Bytes`]; built with [`Bytes::from_owner`] over a [`Zeroizing`] buffer, the last
//! drop zeroes the memory instead of leaving a copy of the secret per request in freed heap.
//!
//! What this cannot reach: the bytes hyper copies into a connection's write buffer (one per
//! connection, overwritten by the next request on it) and the kernel's socket buffers.

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::HeaderValue;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A header value over `text`, marked sensitive, wiped when the last copy is dropped.
pub(crate) fn header(mut text: Zeroizing<String>) -> Result<HeaderValue> {
    // Moves the buffer (no copy); the emptied `text` has nothing left to wipe.
    let buffer = std::mem::take(&mut *text).into_bytes();
    let bytes = Bytes::from_owner(ZeroizingBytes(Zeroizing::new(buffer)));
    let mut h = HeaderValue::from_maybe_shared(bytes).map_err(|_| {
        Error::config("the credential contains characters not allowed in an HTTP header")
    })?;
    h.set_sensitive(true);
    Ok(h)
}

/// `Basic base64(user:password)` (RFC 7617), every intermediate wiped.
pub(crate) fn basic(user: &str, password: &str) -> Result<HeaderValue> {
    let mut pair = Zeroizing::new(String::with_capacity(user.len() + 1 + password.len()));
    pair.push_str(user);
    pair.push(':');
    pair.push_str(password);
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut text = Zeroizing::new(String::with_capacity(6 + pair.len().div_ceil(3) * 4));
    text.push_str("Basic ");
    b64.encode_string(pair.as_bytes(), &mut text);
    header(text)
}

/// `application/x-www-form-urlencoded` of `pairs` as a request body, wiped when sent and
/// dropped. The buffer is sized for the worst case up front (every byte percent-encoded), so
/// it never reallocates (each reallocation would leave a copy behind).
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> Bytes {
    let worst: usize = pairs.iter().map(|(k, v)| 3 * (k.len() + v.len()) + 2).sum();
    let mut text = String::with_capacity(worst);
    {
        let mut form = url::form_urlencoded::Serializer::new(&mut text);
        form.extend_pairs(pairs);
        form.finish();
    }
    Bytes::from_owner(ZeroizingBytes(Zeroizing::new(text.into_bytes())))
}

/// `value` as a JSON request body, wiped when sent and dropped; a counting pass sizes the
/// buffer first, so that writing it never reallocates.
pub(crate) fn json_body(value: &impl serde::Serialize) -> Bytes {
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    let mut buffer = Zeroizing::new(Vec::with_capacity(counter.0));
    // Writing to a Vec cannot fail; a value that cannot be serialised leaves it empty.
    let _ = serde_json::to_writer(&mut *buffer, value);
    Bytes::from_owner(ZeroizingBytes(buffer))
}

/// Counts the bytes written to it and keeps none.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A [`Zeroizing`] byte buffer as a [`Bytes`] owner.
struct ZeroizingBytes(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_rfc_7617() {
        let h = basic("Aladdin", "open sesame").unwrap();
        assert_eq!(h.to_str().unwrap(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(h.is_sensitive());
    }

    #[test]
    fn form_body_is_urlencoded() {
        let body = form_body(&[
            ("grant_type", "client_credentials"),
            ("client_secret", "a b&c"),
        ]);
        assert_eq!(
            &body[..],
            b"grant_type=client_credentials&client_secret=a+b%26c"
        );
    }

    #[test]
    fn json_body_is_compact_json() {
        let body = json_body(&serde_json::json!({"client_secret": "s\"1"}));
        assert_eq!(&body[..], br#"{"client_secret":"s\"1"}"#);
    }

    #[test]
    fn a_header_with_a_newline_is_refused() {
        assert!(header(Zeroizing::new("Bearer a\nb".to_owned())).is_err());
    }
}
