//! What the end-to-end harnesses share.

// Each harness includes this module and uses what it needs of it.
#![allow(dead_code)]

use std::time::Duration;

/// Nearest-rank percentile `p` (0–100) of sorted durations; zero for none.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((p * sorted.len()).div_ceil(100)).max(1) - 1]
}

/// One memory figure of this process from `/proc/self/status` in MiB: `VmRSS` (resident now)
/// or `VmHWM` (the peak).
pub fn memory_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
