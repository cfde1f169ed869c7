#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder_ext;

pub use crate::builder_ext::ServiceBuilderExt;
/// The shared vocabulary every weir layer speaks: re-exported from [`weir_core`].
pub use weir_core::*;
