//! Errors: the library's code and message.
use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_int;

use faultline_sys as sys;

/// What kind of failure (the C interface's `fl_errc`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Errc {
    /// An argument faultline rejects.
    InvalidArgument,
    /// The call needs `trap::install()` or an attached thread first.
    NotInstalled,
    /// An overlapping registration, or a signal owned by someone else.
    AlreadyExists,
    /// No such handler, region or thread.
    NotFound,
    /// A fixed-capacity table or a system limit is full.
    NoSpace,
    /// Another component replaced faultline's signal handler.
    Overridden,
    /// This kernel or machine cannot do it (the message says why).
    Unsupported,
    /// A system call failed.
    SystemError,
    /// Not allowed from here right now (inside a fault handler, say).
    Busy,
    /// A bounded wait ran out.
    TimedOut,
    /// A code this binding does not know.
    Other(i32),
}

impl Errc {
    fn from_code(code: c_int) -> Errc {
        match code {
            sys::FL_EINVAL => Errc::InvalidArgument,
            sys::FL_ENOTINSTALLED => Errc::NotInstalled,
            sys::FL_EEXIST => Errc::AlreadyExists,
            sys::FL_ENOTFOUND => Errc::NotFound,
            sys::FL_ENOSPACE => Errc::NoSpace,
            sys::FL_EOVERRIDDEN => Errc::Overridden,
            sys::FL_EUNSUPPORTED => Errc::Unsupported,
            sys::FL_ESYSTEM => Errc::SystemError,
            sys::FL_EBUSY => Errc::Busy,
            sys::FL_ETIMEDOUT => Errc::TimedOut,
            other => Errc::Other(other),
        }
    }
}

/// A failed call: the kind, and the library's message.
///
/// ```
/// use faultline::region::{Policy, Region, RegionOptions};
/// let e = Region::reserve(0, &RegionOptions::new(Policy::ZeroFill)).unwrap_err();
/// assert_eq!(e.code(), faultline::Errc::InvalidArgument);
/// assert!(e.message().contains("size"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Errc,
    message: String,
}

impl Error {
    /// The kind of failure.
    pub fn code(&self) -> Errc {
        self.code
    }
    /// The library's message, naming what failed and why.
    pub fn message(&self) -> &str {
        &self.message
    }
    pub(crate) fn new(code: Errc, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            Errc::Other(c) => unsafe { CStr::from_ptr(sys::fl_errc_name(c)) }.to_string_lossy().into_owned(),
            _ => format!("{:?}", self.code),
        };
        write!(f, "{}: {}", name, self.message)
    }
}

impl std::error::Error for Error {}

/// faultline's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// A fresh `fl_error` for one call.
pub(crate) fn new_err() -> sys::fl_error {
    sys::fl_error { code: 0, message: [0; 256] }
}

/// `rc` (0 or a negative fl_errc) with the message the call left in `err`.
pub(crate) fn check(rc: c_int, err: &sys::fl_error) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let message = unsafe { CStr::from_ptr(err.message.as_ptr()) }.to_string_lossy().into_owned();
    Err(Error { code: Errc::from_code(rc), message })
}

/// Runs a C call that takes an `fl_error*` and returns 0 or a negative code.
pub(crate) fn call(f: impl FnOnce(*mut sys::fl_error) -> c_int) -> Result<()> {
    let mut err = new_err();
    let rc = f(&mut err);
    check(rc, &err)
}
