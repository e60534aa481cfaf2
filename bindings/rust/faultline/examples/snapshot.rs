//! examples/snapshot.rs: a snapshot restored lazily through a pager region (as Firecracker and CRIU's
//! lazy pages restore a process's memory).
//!
//! A heap of 2048 pages (8 MiB) is filled with a deterministic mix of zero, text-like and numbered
//! pages and saved to a snapshot file: an index (one entry a page: "a zero page" or where the page's
//! bytes are in the file) followed by the non-zero pages. The snapshot is then restored lazily into a
//! region that has nothing in it: the first touch of a page makes faultline ask the region's pager
//! for it, and the pager's fill (a closure, on the pager's threads: ordinary code that may allocate,
//! lock and read files) reads that page from the file, or zeroes it, while the faulting thread waits.
//! The program touches a quarter of the pages in random order, checks every byte against the original,
//! then reads the rest. Prints the backend the region got and why, the file's size against the heap's,
//! how many pages the first pass loaded, and "snapshot: restored state matches" (exit 0), or what
//! differed (exit 1).
//!
//!     cargo run --example snapshot
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use faultline::pager::Pager;
use faultline::region::{FillError, Policy, Region, RegionOptions};

const PAGES: usize = 2048;
const ZERO: u64 = u64::MAX; // the index entry of a page that is all zero

/// The original heap's page `i`.
fn original_page(i: usize, page: usize) -> Vec<u8> {
    match i % 4 {
        0 => vec![0; page],
        1 => format!("page {} of the heap; ", i).bytes().cycle().take(page).collect(),
        _ => (0..page).map(|b| ((i * 31 + b * 7) % 251) as u8).collect(),
    }
}

/// Writes the snapshot: the index, then the non-zero pages. Returns the file's size.
fn save(path: &std::path::Path, page: usize) -> std::io::Result<u64> {
    let mut index = Vec::with_capacity(PAGES);
    let mut data = Vec::new();
    let header = (PAGES * 8) as u64;
    for i in 0..PAGES {
        let bytes = original_page(i, page);
        if bytes.iter().all(|&b| b == 0) {
            index.push(ZERO);
        } else {
            index.push(header + data.len() as u64);
            data.extend_from_slice(&bytes);
        }
    }
    let mut f = File::create(path)?;
    for e in &index {
        f.write_all(&e.to_le_bytes())?;
    }
    f.write_all(&data)?;
    Ok(header + data.len() as u64)
}

fn main() {
    faultline::trap::take_over_from_std().expect("take_over_from_std");
    let page = faultline::region::page_size();
    let path = std::env::temp_dir().join(format!("faultline-snapshot-{}", std::process::id()));
    let file_size = save(&path, page).expect("writing the snapshot");

    // The restore: the index in memory, the pages read from the file on demand.
    let file = Arc::new(File::open(&path).expect("opening the snapshot"));
    let mut raw_index = vec![0u8; PAGES * 8];
    file.read_exact_at(&mut raw_index, 0).expect("reading the index");
    let index: Arc<Vec<u64>> =
        Arc::new(raw_index.chunks(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect());
    let loaded = Arc::new(AtomicUsize::new(0));
    let pager = Pager::start("snapshot", 2).expect("Pager::start");
    let (f, idx, count) = (file.clone(), index.clone(), loaded.clone());
    let opts = RegionOptions::new(Policy::Pager).name("restored-heap").fault_around(16).pager(&pager, move |req| {
        let first = req.offset() / page;
        let dest = req.dest();
        for (k, out) in dest.chunks_mut(page).enumerate() {
            match idx[first + k] {
                ZERO => out.iter_mut().for_each(|b| *b = 0),
                at => f.read_exact_at(out, at).map_err(|_| FillError {
                    errno: libc::EIO,
                    reason: b"the snapshot file could not be read\0",
                })?,
            }
            count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    let heap = Region::reserve(PAGES * page, &opts).expect("Region::reserve");
    println!("region '{}': backend {:?} ({})", "restored-heap", heap.backend(), heap.backend_reason());
    println!("snapshot: {} bytes for a heap of {} bytes", file_size, PAGES * page);
    let bytes = unsafe { std::slice::from_raw_parts(heap.as_ptr(), heap.len()) };

    // A quarter of the pages, in random order (a fixed xorshift sequence).
    let mut differ = 0;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..PAGES / 4 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = (state % PAGES as u64) as usize;
        if bytes[i * page..(i + 1) * page] != original_page(i, page)[..] {
            differ += 1;
        }
    }
    let after_first_pass = loaded.load(Ordering::Relaxed);
    println!(
        "first pass: {} random page reads loaded {} of {} pages ({} faults)",
        PAGES / 4,
        after_first_pass,
        PAGES,
        heap.stats().faults
    );
    // Then all of it.
    for i in 0..PAGES {
        if bytes[i * page..(i + 1) * page] != original_page(i, page)[..] {
            differ += 1;
        }
    }
    let _ = std::fs::remove_file(&path);
    if differ == 0 && loaded.load(Ordering::Relaxed) == PAGES {
        println!("snapshot: restored state matches ({} pages loaded, each once)", PAGES);
    } else {
        eprintln!("snapshot: {} page reads differed; {} pages loaded of {}", differ, loaded.load(Ordering::Relaxed), PAGES);
        std::process::exit(1);
    }
}
