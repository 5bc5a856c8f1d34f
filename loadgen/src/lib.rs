//! The load generator's parts, every scenario a subcommand of the one `loadgen` binary:
//! an HTTP/1.1 driver that sends at a fixed arrival rate (open loop) or as fast as answers come
//! (closed loop) and records latency in HDR histograms ([`http`]); signed actions minted ahead of
//! the measured window, their players drawn from a Zipf distribution ([`tokens`]); Server-Sent
//! Events followers ([`sse`]); a log written straight through the event store ([`log`]); and the
//! soak run under load and faults ([`soak`]); boards and seasons at scale ([`boards`]); the
//! verifiable log and past boards at scale ([`proofs`]).

pub mod boards;
pub mod http;
pub mod log;
pub mod proofs;
pub mod soak;
pub mod sse;
pub mod tokens;

/// A latency histogram in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// `name=value` lines on standard output, one figure each, for `scripts/bench` to read.
pub struct Figures(Vec<(String, String)>);

impl Figures {
    /// No figures yet.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds a figure.
    pub fn add(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.0.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `<prefix>_p50_ms`, `_p99_ms`, `_p999_ms` and `_max_ms` of a histogram in microseconds.
    pub fn latencies(&mut self, prefix: &str, histogram: &hdrhistogram::Histogram<u64>) -> &mut Self {
        let ms = |us: u64| format!("{:.2}", us as f64 / 1e3);
        self.add(&format!("{prefix}_p50_ms"), ms(histogram.value_at_quantile(0.5)))
            .add(&format!("{prefix}_p99_ms"), ms(histogram.value_at_quantile(0.99)))
            .add(&format!("{prefix}_p999_ms"), ms(histogram.value_at_quantile(0.999)))
            .add(&format!("{prefix}_max_ms"), ms(histogram.max()))
    }

    /// Prints them.
    pub fn print(&self) {
        for (name, value) in &self.0 {
            println!("{name}={value}");
        }
    }
}

impl Default for Figures {
    fn default() -> Self {
        Self::new()
    }
}

/// The resident memory of a process, in bytes (Linux: `VmRSS` of `/proc/<pid>/status`).
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for process {pid}"))?;
    Ok(kb * 1024)
}
