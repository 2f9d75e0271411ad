//! Memory: a backend's failed allocation turned into an error that says what to change,
//! and the peak resident memory a run summary reports.

use std::fs;

/// Runs `f`, turning a backend's failed allocation into `Err(what the allocator said)`.
/// LibTorch reports one (a batch too big for the GPU, or for the machine) by panicking out
/// of the op; the training loop makes it an error that says what to change. Other panics
/// go on unwinding.
pub fn catch_allocation_failure<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let payload = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => return Ok(v),
        Err(payload) => payload,
    };
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
    match text {
        Some(text) if is_allocation_failure(&text) => Err(first_line(&text)),
        _ => std::panic::resume_unwind(payload),
    }
}

/// LibTorch's CUDA ("CUDA out of memory") and CPU ("can't allocate memory") allocators.
fn is_allocation_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("out of memory") || t.contains("can't allocate memory")
}

/// The line of a (possibly long, C++-backtrace-carrying) message that names the failure.
fn first_line(text: &str) -> String {
    let lines = || text.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find(|l| is_allocation_failure(l))
        .or_else(|| lines().next())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Peak resident memory of this process (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_allocation_becomes_an_error_and_other_panics_do_not() {
        let err = catch_allocation_failure(|| -> () {
            panic!("Torch(\"\n CUDA out of memory. Tried to allocate 2.00 GiB\nException raised from malloc\")")
        })
        .unwrap_err();
        assert_eq!(err, "CUDA out of memory. Tried to allocate 2.00 GiB");
        assert_eq!(catch_allocation_failure(|| 7), Ok(7));
        let other =
            std::panic::catch_unwind(|| catch_allocation_failure(|| panic!("index out of bounds")));
        assert!(
            other.is_err(),
            "a panic that is not about memory keeps unwinding"
        );
    }
}
