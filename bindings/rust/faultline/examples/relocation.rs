//! examples/relocation.rs: a concurrent relocating collector in miniature (the Rust port of
//! examples/relocation.cpp).
//!
//! A heap of linked objects lives in a faultline region with the barrier policy (old space). Mutator
//! threads keep walking the ring and incrementing each object's counter through pointers into old
//! space. Meanwhile the collector, page by page, protects the old page, copies its objects to new space
//! and publishes the forwarding. A mutator that touches a protected page traps; the barrier (signal
//! context: a plain `fn`, no allocation, no lock) waits until that page is forwarded, then heals the
//! register that held the old address (`Context::heal`) so that the instruction re-executes against the
//! new copy, or, when no register provably holds the pointer, emulates the access against the new copy
//! (`Context::emulate`). Objects keep their offsets: forwarding is "same offset in new space".
//!
//! At the end every object's counter must equal the number of increments the mutators made to it (an
//! increment that landed in a stale copy would be lost) and every object read had its own identity.
//! Prints how many faults were healed, emulated and declined; exit status 0 only when all is
//! consistent, nothing was declined and something was healed (each failed check is named on stderr).
//!
//!     cargo run --example relocation
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faultline::region::{Policy, Region, RegionInfo, RegionOptions, PERM_NONE, PERM_READ, PERM_WRITE};
use faultline::trap::Disposition;
use faultline::{Context, EmulateStatus};

#[repr(C)]
struct Object {
    id: u64,
    count: AtomicU64,
    next: *mut Object,
    pad: u64,
}

const OBJECTS: usize = 8192;
const MUTATORS: usize = 4;

// What the barrier reads: set before the first fault can happen, never changed after.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static OLD: AtomicUsize = AtomicUsize::new(0);
static NEW: AtomicUsize = AtomicUsize::new(0);
static SIZE: AtomicUsize = AtomicUsize::new(0);
static FORWARDED: AtomicPtr<AtomicU8> = AtomicPtr::new(std::ptr::null_mut()); // per old page: copied
static HEALED: AtomicU64 = AtomicU64::new(0);
static EMULATED: AtomicU64 = AtomicU64::new(0);
static DECLINED: AtomicU64 = AtomicU64::new(0);

/// The new address of what was at `old` (0 if not in old space). Waits (bounded) for a page the
/// collector is copying right now. Signal context.
fn forward(old: usize, _: *mut c_void) -> usize {
    let (base, size) = (OLD.load(Ordering::Relaxed), SIZE.load(Ordering::Relaxed));
    if old < base || old >= base + size {
        return 0;
    }
    let flag = unsafe { &*FORWARDED.load(Ordering::Relaxed).add((old - base) / PAGE.load(Ordering::Relaxed)) };
    let mut spins: u64 = 0;
    while flag.load(Ordering::Acquire) == 0 {
        spins += 1;
        if spins > 2_000_000_000 {
            return 0;
        }
        std::hint::spin_loop();
    }
    NEW.load(Ordering::Relaxed) + (old - base)
}

/// The read barrier: heal the pointer register, or emulate the access. Signal context.
fn barrier(ctx: &mut Context, _: &RegionInfo, _: *mut c_void) -> Disposition {
    if ctx.heal(forward, std::ptr::null_mut()) == EmulateStatus::Ok {
        HEALED.fetch_add(1, Ordering::Relaxed);
        return Disposition::Resolved;
    }
    let target = forward(ctx.address(), std::ptr::null_mut());
    if target != 0 && ctx.emulate(target) == EmulateStatus::Ok {
        EMULATED.fetch_add(1, Ordering::Relaxed);
        return Disposition::Resolved;
    }
    DECLINED.fetch_add(1, Ordering::Relaxed);
    Disposition::Declined
}

/// Loads the word at `addr` through an address no register holds as a pointer (base 0, the object in
/// the index register): heal() cannot prove which register to move, so the barrier emulates the load.
#[cfg(target_arch = "x86_64")]
fn indirect_load(addr: usize) -> u64 {
    let v: u64;
    unsafe {
        std::arch::asm!("mov {v}, qword ptr [{zero} + {at}]", v = out(reg) v, zero = in(reg) 0usize,
                        at = in(reg) addr, options(nostack, readonly, preserves_flags));
    }
    v
}
#[cfg(target_arch = "aarch64")]
fn indirect_load(addr: usize) -> u64 {
    let v: u64;
    unsafe {
        std::arch::asm!("ldr {v}, [{zero}, {at}]", v = out(reg) v, zero = in(reg) 0usize, at = in(reg) addr,
                        options(nostack, readonly, preserves_flags));
    }
    v
}

fn main() {
    faultline::trap::take_over_from_std().expect("take_over_from_std");
    let page = faultline::region::page_size();
    let size = OBJECTS * std::mem::size_of::<Object>();
    let pages = size / page;
    // Old space is one memfd mapped twice: the mutators' view (a region with the barrier policy) and the
    // collector's own view, which stays readable after the mutators' pages are protected.
    let (view, collector_view) = unsafe {
        let fd = libc::memfd_create(b"old-space\0".as_ptr() as *const libc::c_char, libc::MFD_CLOEXEC);
        assert!(fd >= 0 && libc::ftruncate(fd, size as libc::off_t) == 0, "memfd");
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let view = libc::mmap(std::ptr::null_mut(), size, rw, libc::MAP_SHARED, fd, 0);
        let collector_view = libc::mmap(std::ptr::null_mut(), size, libc::PROT_READ, libc::MAP_SHARED, fd, 0);
        libc::close(fd);
        assert!(view != libc::MAP_FAILED && collector_view != libc::MAP_FAILED, "mmap");
        (view as *mut u8, collector_view as *const u8)
    };
    let new_space = unsafe {
        let p = libc::mmap(std::ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE,
                           libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        assert!(p != libc::MAP_FAILED, "mmap");
        p as *mut u8
    };
    let forwarded: Vec<AtomicU8> = (0..pages).map(|_| AtomicU8::new(0)).collect();
    PAGE.store(page, Ordering::Relaxed);
    OLD.store(view as usize, Ordering::Relaxed);
    NEW.store(new_space as usize, Ordering::Relaxed);
    SIZE.store(size, Ordering::Relaxed);
    FORWARDED.store(forwarded.as_ptr() as *mut AtomicU8, Ordering::Release);

    let opts = unsafe {
        RegionOptions::new(Policy::Barrier).name("old-space").perms(PERM_READ | PERM_WRITE).barrier(barrier, std::ptr::null_mut())
    };
    let old_space = match unsafe { Region::adopt(view, size, &opts) } {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Region::adopt: {}", e);
            std::process::exit(1);
        }
    };
    old_space.protect(0, pages, PERM_READ | PERM_WRITE).expect("protect"); // open for now

    let objects = view as *mut Object;
    for i in 0..OBJECTS {
        unsafe {
            objects.add(i).write(Object {
                id: (i * 7919 + 1) as u64,
                count: AtomicU64::new(0),
                next: objects.add((i + 1) % OBJECTS), // a ring
                pad: 0,
            });
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let wrong_identity = Arc::new(AtomicU64::new(0));
    let mutators: Vec<_> = (0..MUTATORS)
        .map(|m| {
            let (stop, wrong) = (stop.clone(), wrong_identity.clone());
            let start = objects as usize + m * (OBJECTS / MUTATORS) * std::mem::size_of::<Object>();
            std::thread::spawn(move || {
                let _attached = faultline::thread::attach(None).expect("attach");
                let mut visits = vec![0u64; OBJECTS];
                let mut p = start as *mut Object;
                let mut round: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let indirect = round & 7 == 0;
                    let first = if indirect { indirect_load(p as usize) } else { 0 };
                    let id = unsafe { std::ptr::read_volatile(&(*p).id) };
                    if indirect && first != id {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    let index = (id as usize).wrapping_sub(1) / 7919;
                    if index >= OBJECTS || (id as usize).wrapping_sub(1) % 7919 != 0 {
                        wrong.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    unsafe { (*p).count.fetch_add(1, Ordering::Relaxed) };
                    visits[index] += 1;
                    // An old-space pointer: the next access through it may trap and be healed.
                    p = unsafe { std::ptr::read_volatile(&(*p).next) };
                }
                visits
            })
        })
        .collect();

    // The collector: page by page, protect, copy, publish.
    std::thread::sleep(Duration::from_millis(20));
    for pg in 0..pages {
        old_space.protect(pg, 1, PERM_NONE).expect("protect");
        // Once the protection is in place no mutator can write the page: copy it through the collector's
        // own view.
        unsafe { std::ptr::copy_nonoverlapping(collector_view.add(pg * page), new_space.add(pg * page), page) };
        forwarded[pg].store(1, Ordering::Release);
    }
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let visits: Vec<Vec<u64>> = mutators.into_iter().map(|t| t.join().expect("a mutator panicked")).collect();

    let moved = new_space as *const Object;
    let mut bad = 0;
    for i in 0..OBJECTS {
        let expected: u64 = visits.iter().map(|v| v[i]).sum();
        let o = unsafe { &*moved.add(i) };
        if o.count.load(Ordering::Relaxed) != expected || o.id != (i * 7919 + 1) as u64 {
            bad += 1;
        }
    }
    let (healed, emulated, declined) =
        (HEALED.load(Ordering::Relaxed), EMULATED.load(Ordering::Relaxed), DECLINED.load(Ordering::Relaxed));
    let wrong = wrong_identity.load(Ordering::Relaxed);
    println!(
        "relocated {} objects on {} pages; faults healed {}, emulated {}, declined {}; objects inconsistent {}, \
         wrong identities {}",
        OBJECTS, pages, healed, emulated, declined, bad, wrong
    );
    let mut failed = false;
    let mut check = |ok: bool, what: &str| {
        if !ok {
            eprintln!("relocation: check failed: {}", what);
            failed = true;
        }
    };
    check(bad == 0, "every object's counter holds every increment made to it");
    check(wrong == 0, "every object read had its own identity");
    check(declined == 0, "the barrier declined no fault");
    check(healed > 0, "at least one fault was healed");
    std::process::exit(if failed { 1 } else { 0 });
}
