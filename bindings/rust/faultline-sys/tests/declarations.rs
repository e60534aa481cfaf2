//! This crate's declarations against the ABI record, abi/faultline.abi (written from the C header and
//! the built library by scripts/check-abi.py): every recorded function is declared here with as many
//! parameters, and every recorded struct has the same size and alignment here.
use std::collections::BTreeMap;
use std::mem::{align_of, size_of};

fn record() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../abi/faultline.abi");
    std::fs::read_to_string(path).expect("abi/faultline.abi")
}

/// The parameter count of a C prototype ("int f(void)" -> 0).
fn c_params(proto: &str) -> usize {
    let open = proto.find('(').unwrap();
    let inner = &proto[open + 1..proto.rfind(')').unwrap()];
    if inner.trim() == "void" || inner.trim().is_empty() {
        return 0;
    }
    // Commas at depth 0 (a function-pointer parameter has its own parentheses).
    let (mut depth, mut n) = (0i32, 1usize);
    for c in inner.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => n += 1,
            _ => {}
        }
    }
    n
}

/// The Rust declarations: name -> parameter count, from this crate's source.
fn rust_decls() -> BTreeMap<String, usize> {
    let src = include_str!("../src/lib.rs");
    let mut out = BTreeMap::new();
    let mut rest = src;
    while let Some(at) = rest.find("pub fn fl_") {
        let decl = &rest[at + 7..];
        let name: String = decl.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let open = decl.find('(').unwrap();
        // The parameter list ends at the matching parenthesis.
        let (mut depth, mut end) = (0i32, open);
        for (i, c) in decl[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &decl[open + 1..end];
        let (mut d, mut n) = (0i32, 0usize);
        let mut any = false;
        let mut prev = ' ';
        for c in inner.chars() {
            let was = prev;
            prev = c;
            match c {
                '(' | '<' => d += 1,
                '>' if was == '-' => {} // the arrow of a function type
                ')' | '>' => d -= 1,
                ':' if d == 0 => {
                    n += 1;
                    any = true
                }
                _ => {}
            }
        }
        // "a: T" counts one ':' per parameter; paths like std::x are not used in the parameters.
        out.insert(name, if any { n } else { 0 });
        rest = &decl[end..];
    }
    out
}

#[test]
fn every_function_is_declared_with_its_parameters() {
    let decls = rust_decls();
    let mut missing = Vec::new();
    let mut count = 0;
    for line in record().lines().filter(|l| l.starts_with("fn ")) {
        let mut words = line.splitn(3, ' ');
        words.next();
        let name = words.next().unwrap();
        let proto = words.next().unwrap();
        count += 1;
        match decls.get(name) {
            None => missing.push(format!("{name}: not declared")),
            Some(&n) if n != c_params(proto) => {
                missing.push(format!("{name}: {n} parameters here, {} in C: {proto}", c_params(proto)))
            }
            _ => {}
        }
    }
    assert!(count > 50, "the record lists {count} functions");
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn every_struct_has_the_recorded_layout() {
    use faultline_sys::*;
    let here: BTreeMap<&str, (usize, usize)> = [
        ("fl_error", (size_of::<fl_error>(), align_of::<fl_error>())),
        ("fl_handler_id", (size_of::<fl_handler_id>(), align_of::<fl_handler_id>())),
        ("fl_counters", (size_of::<fl_counters>(), align_of::<fl_counters>())),
        ("fl_region_info", (size_of::<fl_region_info>(), align_of::<fl_region_info>())),
        ("fl_fill_request", (size_of::<fl_fill_request>(), align_of::<fl_fill_request>())),
        ("fl_region_options", (size_of::<fl_region_options>(), align_of::<fl_region_options>())),
        ("fl_region_stats", (size_of::<fl_region_stats>(), align_of::<fl_region_stats>())),
        ("fl_thread_stats", (size_of::<fl_thread_stats>(), align_of::<fl_thread_stats>())),
    ]
    .into_iter()
    .collect();
    let mut wrong = Vec::new();
    for line in record().lines().filter(|l| l.starts_with("layout ")) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let want = (w[2].parse::<usize>().unwrap(), w[3].parse::<usize>().unwrap());
        match here.get(w[1]) {
            None => wrong.push(format!("{}: no Rust struct", w[1])),
            Some(&got) if got != want => wrong.push(format!("{}: {:?} here, {:?} in C", w[1], got, want)),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
