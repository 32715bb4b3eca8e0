//! Request ids: every request carries an `x-request-id` header (the client's, or one made
//! here), and its response repeats it. The [request layer](super::request) applies them.
//!
//! No copy of the id in the request's extensions (no `tower_http::request_id::RequestId` to
//! extract: read the header): tower-http's pair of layers looked the header up three times and
//! grew every request's extension map.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use http::header::{Entry, HeaderName};
use http::{HeaderMap, HeaderValue};

/// The request id header.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Ids of the form `<pid>-<n>`: unique across the workers of one service without the cost of
/// random numbers.
#[derive(Debug)]
pub(crate) struct RequestIds {
    /// `<pid>-`, written once.
    prefix: Vec<u8>,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new(pid: u32) -> Self {
        Self::starting_at(pid, 0)
    }

    fn starting_at(pid: u32, next: u64) -> Self {
        Self {
            prefix: format!("{pid}-").into_bytes(),
            next: AtomicU64::new(next),
        }
    }

    /// The request's id: the one its headers carry, or a new one added to them.
    pub(crate) fn tag(&self, headers: &mut HeaderMap) -> HeaderValue {
        // One entry lookup: `get` and then `insert` would hash the header name twice.
        match headers.entry(X_REQUEST_ID) {
            Entry::Occupied(id) => id.get().clone(),
            Entry::Vacant(slot) => slot.insert(self.make()).clone(),
        }
    }

    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // The prefix holds at most 11 bytes (a u32 and a dash), a u64 at most 20 digits.
        let mut id = Id {
            bytes: [0; 32],
            len: 0,
        };
        id.bytes[..self.prefix.len()].copy_from_slice(&self.prefix);
        id.len = write_decimal(&mut id.bytes, self.prefix.len(), n);
        // Owned, the id's clones (the request's header, the response's) share one allocation
        // by a reference count; bytes copied from a slice would be copied again, into a shared
        // buffer, on the first clone.
        let id = Bytes::from_owner(id);
        // SAFETY: a header value must hold no control characters, and an id holds only ASCII
        // digits and one dash. Checking each byte again cost as much as writing them.
        unsafe { HeaderValue::from_maybe_shared_unchecked(id) }
    }
}

/// The bytes of one id.
struct Id {
    bytes: [u8; 32],
    len: usize,
}

impl AsRef<[u8]> for Id {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Repeats the request's id on its response, unless the handler set one of its own.
pub(crate) fn repeat(id: HeaderValue, response: &mut HeaderMap) {
    response.entry(X_REQUEST_ID).or_insert(id);
}

/// Writes `value` in decimal at `at`; returns the end.
fn write_decimal(buffer: &mut [u8; 32], at: usize, mut value: u64) -> usize {
    let len = value
        .checked_ilog10()
        .map_or(1, |digits| digits as usize + 1);
    for slot in buffer[at..at + len].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    at + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_without_an_id_get_pid_dash_counter() {
        let ids = RequestIds::starting_at(4_294_967_295, u64::MAX - 1);
        let mut headers = HeaderMap::new();
        assert_eq!(ids.tag(&mut headers), "4294967295-18446744073709551614");
        assert_eq!(headers[X_REQUEST_ID], "4294967295-18446744073709551614");
        assert_eq!(
            ids.tag(&mut HeaderMap::new()),
            "4294967295-18446744073709551615"
        );
    }

    #[test]
    fn every_id_is_a_valid_header_value() {
        for (pid, n) in [(0, 0), (7, 9), (1, 10), (4_294_967_295, u64::MAX)] {
            let id = RequestIds::starting_at(pid, n).tag(&mut HeaderMap::new());
            assert!(HeaderValue::from_bytes(id.as_bytes()).is_ok_and(|checked| checked == id));
        }
    }

    #[test]
    fn the_first_id_is_zero_and_small_numbers_have_no_padding() {
        assert_eq!(RequestIds::new(7).tag(&mut HeaderMap::new()), "7-0");
    }

    #[test]
    fn a_client_id_is_kept_and_repeated() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc"));
        let id = RequestIds::new(7).tag(&mut headers);
        assert_eq!(id, "abc");
        let mut response = HeaderMap::new();
        repeat(id, &mut response);
        assert_eq!(response[X_REQUEST_ID], "abc");
    }

    #[test]
    fn an_id_the_handler_set_on_the_response_wins() {
        let mut response = HeaderMap::new();
        response.insert(X_REQUEST_ID, HeaderValue::from_static("own"));
        repeat(HeaderValue::from_static("7-0"), &mut response);
        assert_eq!(response[X_REQUEST_ID], "own");
    }
}
