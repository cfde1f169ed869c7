//! The `Idempotency-Key` reader, reachable from `fuzz/` (built only with `--cfg fuzzing`, which
//! cargo-fuzz sets) for the `idempotency_key` fuzz target. Not part of the API.

use http::HeaderMap;

/// The key of `headers` as the layer reads it: `Ok(None)` when there is none, `Err(true)` when
/// it is too long, `Err(false)` when it is malformed.
///
/// # Errors
///
/// When the layer would answer 400.
pub fn read_key(headers: &HeaderMap, max_len: usize) -> Result<Option<&[u8]>, bool> {
    crate::key::read_key(headers, max_len).map_err(|bad| bad == crate::key::BadKey::TooLong)
}
