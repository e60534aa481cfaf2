//! A pager in another process: the program reserves a pager region with
//! [`crate::region::RegionOptions::remote_pager_socket`]; the pager process receives it here and serves
//! its faults from its own memory. A request not answered within the region's fill timeout fails its
//! page (SIGBUS with a report), and so does every fault once the pager process is gone: never a zero
//! page, never a hang.
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int};
use std::os::unix::io::RawFd;

use faultline_sys as sys;

use crate::error::{call, Result};
use crate::region::{FillError, FillRequest};

/// The region a program sent, as the pager process holds it.
pub struct RemoteRegion {
    raw: *mut sys::fl_remote_region,
}

unsafe impl Send for RemoteRegion {}

/// In the pager process: receives one region from the program over `socket`.
pub fn receive(socket: RawFd) -> Result<RemoteRegion> {
    let mut raw: *mut sys::fl_remote_region = std::ptr::null_mut();
    call(|e| unsafe { sys::fl_remote_pager_receive(socket, &mut raw, e) })?;
    Ok(RemoteRegion { raw })
}

struct ServeBox<'a> {
    fill: &'a mut dyn FnMut(&mut FillRequest) -> std::result::Result<(), FillError>,
    stop: &'a mut dyn FnMut() -> bool,
}

unsafe extern "C" fn serve_fill(req: *const sys::fl_fill_request, data: *mut c_void, reason: *mut *const c_char) -> c_int {
    let b = &mut *(data as *mut ServeBox);
    let mut r = crate::region::fill_request_from_raw(&*req);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (b.fill)(&mut r))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            if e.reason.last() == Some(&0) {
                *reason = e.reason.as_ptr() as *const c_char;
            }
            e.errno
        }
        Err(_) => {
            *reason = b"the remote pager's fill panicked\0".as_ptr() as *const c_char;
            libc::EIO
        }
    }
}

unsafe extern "C" fn serve_stop(data: *mut c_void) -> c_int {
    let b = &mut *(data as *mut ServeBox);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (b.stop)())).unwrap_or(true) as c_int
}

impl RemoteRegion {
    /// The region's name in the program.
    pub fn name(&self) -> &str {
        unsafe { CStr::from_ptr(sys::fl_remote_region_name(self.raw)) }.to_str().unwrap_or("")
    }
    /// Its base address in the program.
    pub fn base(&self) -> u64 {
        unsafe { sys::fl_remote_region_base(self.raw) }
    }
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        unsafe { sys::fl_remote_region_size(self.raw) }
    }
    /// Serves the program's requests on this thread with `fill` (it writes [`FillRequest::dest`], a
    /// buffer of this process) until the program closes its end, or `stop` returns true (asked at least
    /// every 100 ms).
    pub fn serve<F, S>(&mut self, mut fill: F, mut stop: S) -> Result<()>
    where
        F: FnMut(&mut FillRequest) -> std::result::Result<(), FillError>,
        S: FnMut() -> bool,
    {
        let mut b = ServeBox { fill: &mut fill, stop: &mut stop };
        let data = &mut b as *mut ServeBox as *mut c_void;
        call(|e| unsafe { sys::fl_remote_region_serve(self.raw, serve_fill, data, Some(serve_stop), data, e) })
    }
}

impl Drop for RemoteRegion {
    fn drop(&mut self) {
        unsafe { sys::fl_remote_region_destroy(self.raw) }
    }
}

impl std::fmt::Debug for RemoteRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegion").field("name", &self.name()).field("size", &self.size()).finish()
    }
}
