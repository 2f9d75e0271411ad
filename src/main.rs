//! `crossdenoise`: the workstation command line. Each subcommand lives in `cli/` and only
//! parses, resolves and calls the library crates; errors are printed once, with their
//! whole chain, and become the exit status.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod report;

fn main() -> ExitCode {
    keep_freed_memory();
    quiet_on_a_closed_pipe();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and each cause it does not already spell out: the library errors that name a
/// file show their source in their own message (`path: reason`), so `{:#}` would repeat it.
fn chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// A training step allocates and frees the same few-megabyte tensors hundreds of times. glibc
/// serves blocks above its mmap threshold (128 kB, raised only as large blocks get freed)
/// with fresh mappings and returns them on free: a page fault per page zeroed on each reuse
/// and a TLB shootdown per unmap, an eighth of a flex step at 32 channels in the kernel
/// (BENCHMARKS.md). Serving them from the heap and keeping freed memory there makes reuse a
/// free-list hit; the process holds its peak, which it reaches in the first step anyway.
/// Newer glibc caps the threshold at 32 MiB, hence the fallback.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread exists.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 0 {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        }
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Output piped into a reader that stops early (`crossdenoise phantoms ... | head -1`)
/// ends the command quietly, as it ends any Unix tool, instead of a panic from `println!`
/// at the broken pipe. Rust ignores SIGPIPE so that a write returns the error; the CLI
/// writes to no pipe whose reader may close but its own stdout and stderr (its sockets
/// are sent to with MSG_NOSIGNAL and still get the error).
#[cfg(unix)]
fn quiet_on_a_closed_pipe() {
    // SAFETY: restores the default disposition of one signal before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn quiet_on_a_closed_pipe() {}
