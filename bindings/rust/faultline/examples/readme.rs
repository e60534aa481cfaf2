use faultline::pager::Pager;
use faultline::region::{Policy, Region, RegionOptions};

fn main() -> Result<(), faultline::Error> {
    faultline::trap::take_over_from_std()?; // faults nobody resolves get faultline's report, not std's
    faultline::report::enable(&Default::default())?;
    // 1 GiB of address space with nothing in it: a closure fills each page on its first touch, on the
    // pager's threads (ordinary code: it may allocate, lock, read files).
    let pager = Pager::start("squares", 2)?;
    let opts = RegionOptions::new(Policy::Pager).name("squares").pager(&pager, |req| {
        let first = req.offset() / 8;
        for (i, word) in req.dest().chunks_mut(8).enumerate() {
            word.copy_from_slice(&(((first + i) * (first + i)) as u64).to_ne_bytes());
        }
        Ok(())
    });
    let squares = Region::reserve(1 << 30, &opts)?;
    let words = unsafe { std::slice::from_raw_parts(squares.as_ptr() as *const u64, squares.len() / 8) };
    println!("{} {}", words[12], words[100_000_000]); // 144 10000000000000000
    println!("{} pages filled, on the {:?} backend", squares.stats().pages_filled, squares.backend());
    Ok(())
}
