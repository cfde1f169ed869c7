//! gRPC status codes, without depending on tonic.

use std::fmt;

/// A gRPC status code (the `grpc-status` value), as defined by gRPC's `status.proto`.
///
/// weir reads and writes gRPC statuses at the HTTP level (headers and trailers), so it needs the
/// codes without depending on tonic; with the `tonic` feature they convert to and from
/// `tonic::Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum GrpcCode {
    /// 0: not an error.
    Ok = 0,
    /// 1: the operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// 2: unknown error.
    Unknown = 2,
    /// 3: the client gave an invalid argument.
    InvalidArgument = 3,
    /// 4: the deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// 5: some requested entity was not found.
    NotFound = 5,
    /// 6: the entity a client tried to create already exists.
    AlreadyExists = 6,
    /// 7: the caller may not execute the operation.
    PermissionDenied = 7,
    /// 8: some resource has been exhausted (a quota, a rate limit).
    ResourceExhausted = 8,
    /// 9: the system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// 10: the operation was aborted, typically by a concurrency conflict.
    Aborted = 10,
    /// 11: the operation was attempted past the valid range.
    OutOfRange = 11,
    /// 12: the operation is not implemented or supported.
    Unimplemented = 12,
    /// 13: internal error.
    Internal = 13,
    /// 14: the service is currently unavailable; usually transient.
    Unavailable = 14,
    /// 15: unrecoverable data loss or corruption.
    DataLoss = 15,
    /// 16: the request has no valid authentication credentials.
    Unauthenticated = 16,
}

impl GrpcCode {
    const ALL: [Self; 17] = [
        Self::Ok,
        Self::Cancelled,
        Self::Unknown,
        Self::InvalidArgument,
        Self::DeadlineExceeded,
        Self::NotFound,
        Self::AlreadyExists,
        Self::PermissionDenied,
        Self::ResourceExhausted,
        Self::FailedPrecondition,
        Self::Aborted,
        Self::OutOfRange,
        Self::Unimplemented,
        Self::Internal,
        Self::Unavailable,
        Self::DataLoss,
        Self::Unauthenticated,
    ];

    /// The code with this number, or `None` outside 0..=16.
    #[must_use]
    pub const fn from_u8(code: u8) -> Option<Self> {
        if (code as usize) < Self::ALL.len() {
            Some(Self::ALL[code as usize])
        } else {
            None
        }
    }

    /// Parses a `grpc-status` value: a decimal number 0..=16 with nothing around it.
    #[must_use]
    pub fn from_bytes(value: &[u8]) -> Option<Self> {
        match value {
            [d @ b'0'..=b'9'] => Self::from_u8(d - b'0'),
            [b'1', d @ b'0'..=b'6'] => Self::from_u8(10 + d - b'0'),
            _ => None,
        }
    }

    /// The numeric value.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The value as written in a `grpc-status` header: `"0"` ..= `"16"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        const TEXT: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        TEXT[self as usize]
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(feature = "tonic")]
impl From<GrpcCode> for tonic::Code {
    fn from(code: GrpcCode) -> Self {
        Self::from_i32(i32::from(code.as_u8()))
    }
}

#[cfg(feature = "tonic")]
impl From<tonic::Code> for GrpcCode {
    fn from(code: tonic::Code) -> Self {
        u8::try_from(code as i32)
            .ok()
            .and_then(Self::from_u8)
            .unwrap_or(Self::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_code_and_nothing_else() {
        for code in GrpcCode::ALL {
            assert_eq!(GrpcCode::from_bytes(code.as_str().as_bytes()), Some(code));
            assert_eq!(GrpcCode::from_u8(code.as_u8()), Some(code));
        }
        for bad in [
            "",
            "17",
            "-1",
            " 1",
            "1 ",
            "01",
            "99",
            "x",
            "1a",
            "4294967310",
        ] {
            assert_eq!(GrpcCode::from_bytes(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(GrpcCode::from_u8(17), None);
    }
}
