//! Pagers: threads that fill the missing pages of pager regions while the faulting threads wait.
//!
//! ```
//! let pager = faultline::pager::Pager::start("loader", 2).unwrap();
//! # drop(pager);
//! ```
use std::ffi::CString;
use std::sync::Arc;

use faultline_sys as sys;

use crate::error::{call, Error, Errc, Result};

/// A pager's threads. Cheap to clone (the clones share them); they stop once the last clone and every
/// region using them are gone.
#[derive(Clone)]
pub struct Pager {
    inner: Arc<PagerInner>,
}

struct PagerInner(*mut sys::fl_pager);
unsafe impl Send for PagerInner {}
unsafe impl Sync for PagerInner {}
impl Drop for PagerInner {
    fn drop(&mut self) {
        unsafe { sys::fl_pager_release(self.0) }
    }
}

impl Pager {
    /// Starts `threads` (1..64) pager threads named after `name`.
    pub fn start(name: &str, threads: u32) -> Result<Pager> {
        let n = CString::new(name).map_err(|_| Error::new(Errc::InvalidArgument, "Pager::start: a NUL in the name"))?;
        let mut raw: *mut sys::fl_pager = std::ptr::null_mut();
        call(|e| unsafe { sys::fl_pager_start(n.as_ptr(), threads, &mut raw, e) })?;
        Ok(Pager { inner: Arc::new(PagerInner(raw)) })
    }
    pub(crate) fn raw(&self) -> *mut sys::fl_pager {
        self.inner.0
    }
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager").finish_non_exhaustive()
    }
}
