//! What the property-based tests share: their case count, and a global allocator that
//! records the largest single allocation made while a thread is measuring, for "never an
//! allocation bigger than the input justifies". Each fuzz test binary makes it its global
//! allocator (`#[global_allocator] static A: Recording = Recording;`); it must be the only
//! one there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
/// The recording allocator: the system's, noting each allocation's size while measuring.
pub struct Recording;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note(size: usize) {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

/// Runs `f` and returns its result with the largest single allocation it made on this
/// thread.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    (out, LARGEST.with(Cell::get))
}

/// `default` cases per property, or `PROPTEST_CASES`; failures are reported, not persisted
/// into the source tree.
pub fn cases(default: u32) -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    }
}

/// A mutation of a valid file: bytes overwritten (positions taken modulo the length),
/// the file cut at a fraction of its length, and bytes appended.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub writes: Vec<(usize, u8)>,
    pub keep: Option<f64>,
    pub tail: Vec<u8>,
}

pub fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
    use proptest::prelude::*;
    (
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        prop::option::of(0.0..1.0f64),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(writes, keep, tail)| Mutation { writes, keep, tail })
}

impl Mutation {
    pub fn apply(&self, seed: &[u8]) -> Vec<u8> {
        let mut b = seed.to_vec();
        for &(at, v) in &self.writes {
            let n = b.len();
            b[at % n] = v;
        }
        if let Some(f) = self.keep {
            b.truncate((b.len() as f64 * f) as usize);
        }
        b.extend(&self.tail);
        b
    }
}
