//! `From<weir_core::Error> for tonic::Status`.

use super::status::grpc_code;
use crate::Error;
use crate::wire::{GRPC_RETRY_PUSHBACK_MS_STR, grpc_pushback_millis};

impl From<&Error> for tonic::Status {
    /// The status with the code of [`grpc_code`], [`Error::reason`] as the message and, when
    /// [`Error::retry_after`] is known, `grpc-retry-pushback-ms` in the metadata (milliseconds,
    /// rounded up).
    fn from(err: &Error) -> Self {
        let mut status = Self::new(grpc_code(err).into(), err.reason());
        if let Some(after) = err.retry_after() {
            status.metadata_mut().insert(
                tonic::metadata::MetadataKey::from_static(GRPC_RETRY_PUSHBACK_MS_STR),
                tonic::metadata::MetadataValue::from(grpc_pushback_millis(after)),
            );
        }
        status
    }
}

impl From<Error> for tonic::Status {
    /// As `From<&Error>`, and the error is kept as the status's source, so
    /// `Error::find(&status)` still finds it in-process.
    fn from(err: Error) -> Self {
        let mut status = Self::from(&err);
        status.set_source(std::sync::Arc::new(err));
        status
    }
}
