//! The crash report: when a fault reaches the previous action (nobody resolved it), faultline writes
//! what happened — signal, address, the region, registers, a backtrace — and the process still ends by
//! the original signal.
//!
//! ```
//! faultline::report::enable(&faultline::report::Options::default()).unwrap();
//! assert!(faultline::report::enabled());
//! faultline::report::disable();
//! ```
use faultline_sys as sys;

use crate::error::{call, Result};

/// Colour in the report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Color {
    /// When the descriptor is a terminal and NO_COLOR is not set.
    Automatic,
    /// Never.
    Never,
    /// Always.
    Always,
}

/// How the report is written.
#[derive(Copy, Clone, Debug)]
pub struct Options {
    /// The descriptor it goes to (2: standard error).
    pub fd: i32,
    /// Colour.
    pub color: Color,
    /// Whether to include a backtrace.
    pub backtrace: bool,
    /// At most this many frames (0: 64).
    pub max_frames: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options { fd: 2, color: Color::Automatic, backtrace: true, max_frames: 0 }
    }
}

/// Enables the report (installs faultline for the memory signals if needed).
pub fn enable(o: &Options) -> Result<()> {
    let color = match o.color {
        Color::Automatic => -1,
        Color::Never => 0,
        Color::Always => 1,
    };
    call(|e| unsafe { sys::fl_report_enable(o.fd, color, o.backtrace as i32, o.max_frames, e) })
}

/// Disables it.
pub fn disable() {
    unsafe { sys::fl_report_disable() }
}

/// Whether it is enabled.
pub fn enabled() -> bool {
    unsafe { sys::fl_report_enabled() != 0 }
}
