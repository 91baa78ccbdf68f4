//! The standard process metrics that Prometheus users look for first (`process_resident_memory_bytes`,
//! `process_open_fds`, ...), with the names and units of Prometheus's own client libraries, read from Linux's
//! `/proc/self` at each scrape. Elsewhere the figures that cannot be read are left out.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, fixed at 100 by the kernel's ABI.
const TICKS_PER_SECOND: u64 = 100;

/// Remembers when the process started, in seconds since the Unix epoch; the first call sets it.
pub(crate) fn note_start() -> f64 {
    static STARTED: OnceLock<f64> = OnceLock::new();
    *STARTED.get_or_init(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64()))
}

/// Sets the process gauges from what `/proc/self` says now.
pub(crate) fn record() {
    metrics::gauge!("process_start_time_seconds").set(note_start());
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for (field, name) in [("VmRSS:", "process_resident_memory_bytes"), ("VmSize:", "process_virtual_memory_bytes")]
        {
            if let Some(kib) = kibibytes(&status, field) {
                metrics::gauge!(name).set(kib * 1024.0);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        // The directory's own descriptor, open while it is read, is one of them.
        let open = entries.count().saturating_sub(1);
        metrics::gauge!("process_open_fds").set(u32::try_from(open).map_or(f64::MAX, f64::from));
    }
    if let Some(limit) = std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(soft_open_files_limit) {
        metrics::gauge!("process_max_fds").set(limit);
    }
    if let Some(ticks) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(cpu_ticks) {
        // Whole seconds: the `metrics` crate's counters count in integers.
        metrics::counter!("process_cpu_seconds_total").absolute(ticks / TICKS_PER_SECOND);
    }
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`.
fn kibibytes(status: &str, field: &str) -> Option<f64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// The soft limit of the `Max open files` line of `/proc/<pid>/limits`.
fn soft_open_files_limit(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// User plus system CPU time in ticks, fields 14 and 15 of `/proc/<pid>/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_proc_as_linux_writes_them() {
        let status = "Name:\tbitburst\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(kibibytes(status, "VmRSS:"), Some(2048.0));
        assert_eq!(kibibytes(status, "VmSize:"), Some(123_456.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_open_files_limit(limits), Some(1024.0));
        // The name holds a space and a parenthesis; utime is 250 ticks, stime 50.
        let stat = "4242 (bit burst) R 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 9 0 12345 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }
}
