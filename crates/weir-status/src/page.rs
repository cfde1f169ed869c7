//! The page: one self-contained HTML document (inline CSS and vanilla JS, nothing fetched but
//! the JSON it renders).

/// The page, as served by `GET /status`.
pub(crate) const PAGE: &str = include_str!("page.html");
