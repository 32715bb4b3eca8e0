//! The Prometheus text exposition format 0.0.4 of the whole service: every worker's row, the
//! retired row, the supervisor's counts and each process's resources.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::process::ProcessStats;
use super::region::{Entry, ExitCause, Kind, Region};

/// The `Content-Type` of the format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family: its kind, help and series (labels, first cell).
#[derive(Debug)]
struct Family {
    kind: Kind,
    help: Option<String>,
    series: Vec<(String, usize)>,
}

/// Renders the service's metrics.
pub(crate) fn render(region: &Region, supervised: bool) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let entries = region.entries();
    for family in entries.iter().filter(|e| e.kind == Kind::Family) {
        let Some(kind) = region.family_kind(family) else {
            continue;
        };
        families.insert(
            family.name.clone(),
            Family {
                kind,
                help: region.help(family),
                series: Vec::new(),
            },
        );
    }
    for Entry {
        kind,
        name,
        labels,
        cell,
        ..
    } in entries
    {
        if let Some(family) = families.get_mut(&name).filter(|f| f.kind == kind) {
            family.series.push((labels, cell));
        }
    }
    let mut out = String::with_capacity(64 * 1024);
    region.consistent(|region| {
        out.clear();
        let owners = region.owners();
        for (name, family) in &mut families {
            family.series.sort();
            write_family(&mut out, region, name, family, &owners);
        }
    });
    if supervised {
        write_supervisor(&mut out, region);
    }
    write_processes(&mut out, region, supervised);
    out
}

fn write_family(
    out: &mut String,
    region: &Region,
    name: &str,
    family: &Family,
    owners: &[(usize, u32, usize)],
) {
    let kind = match family.kind {
        Kind::Counter => "counter",
        Kind::Gauge | Kind::WorkerGauge => "gauge",
        Kind::Histogram => "histogram",
        Kind::Family | Kind::Text => return,
    };
    let help = family.help.as_deref().unwrap_or("(no description given)");
    header(out, name, help, kind);
    for (labels, cell) in &family.series {
        match family.kind {
            Kind::Counter => {
                let (value, _) = region.total(*cell, false);
                sample(out, name, "", labels, "");
                let _ = writeln!(out, "{value}");
            }
            Kind::Gauge => {
                let (_, value) = region.total(*cell, true);
                sample(out, name, "", labels, "");
                float(out, value);
            }
            Kind::WorkerGauge => {
                for (slot, _, index) in owners {
                    let bits =
                        region.row(Some(*slot))[*cell].load(std::sync::atomic::Ordering::Relaxed);
                    sample(out, name, "", labels, &format!("worker=\"{index}\""));
                    float(out, f64::from_bits(bits));
                }
            }
            Kind::Histogram => write_histogram(out, region, name, labels, *cell),
            Kind::Family | Kind::Text => {}
        }
    }
}

fn write_histogram(out: &mut String, region: &Region, name: &str, labels: &str, cell: usize) {
    let bounds = region.buckets();
    let mut cumulative = 0u64;
    for (i, bound) in bounds.iter().enumerate() {
        cumulative += region.total(cell + i, false).0;
        sample(out, name, "_bucket", labels, &format!("le=\"{bound}\""));
        let _ = writeln!(out, "{cumulative}");
    }
    cumulative += region.total(cell + bounds.len(), false).0;
    sample(out, name, "_bucket", labels, "le=\"+Inf\"");
    let _ = writeln!(out, "{cumulative}");
    let (_, sum) = region.total(cell + bounds.len() + 1, true);
    sample(out, name, "_sum", labels, "");
    float(out, sum);
    sample(out, name, "_count", labels, "");
    let _ = writeln!(out, "{cumulative}");
}

fn write_supervisor(out: &mut String, region: &Region) {
    let (configured, ready) = region.workers();
    header(
        out,
        "buvar_workers_configured",
        "Worker processes the supervisor keeps.",
        "gauge",
    );
    let _ = writeln!(out, "buvar_workers_configured {configured}");
    header(
        out,
        "buvar_workers_ready",
        "Worker slots with a ready worker.",
        "gauge",
    );
    let _ = writeln!(out, "buvar_workers_ready {ready}");
    header(
        out,
        "buvar_workers_alive",
        "Worker processes alive (more than configured during a rolling restart).",
        "gauge",
    );
    let _ = writeln!(out, "buvar_workers_alive {}", region.owners().len());
    header(
        out,
        "buvar_worker_exits_total",
        "Worker processes reaped by the supervisor, by cause.",
        "counter",
    );
    for cause in ExitCause::ALL {
        let _ = writeln!(
            out,
            "buvar_worker_exits_total{{cause=\"{}\"}} {}",
            cause.label(),
            region.exits(cause)
        );
    }
}

/// One value of a process's stats, if known.
type ProcessValue = fn(&ProcessStats) -> Option<f64>;

fn write_processes(out: &mut String, region: &Region, supervised: bool) {
    let mut processes: Vec<(String, ProcessStats)> = Vec::new();
    if supervised {
        if let Some(stats) = ProcessStats::read(region.parent()) {
            processes.push(("process=\"supervisor\"".to_owned(), stats));
        }
    }
    for (_, pid, index) in region.owners() {
        if let Some(stats) = ProcessStats::read(pid) {
            processes.push((
                format!("process=\"worker\",worker=\"{index}\",pid=\"{pid}\""),
                stats,
            ));
        }
    }
    let metrics: [(&str, &str, &str, ProcessValue); 4] = [
        (
            "process_resident_memory_bytes",
            "Resident memory of each process of the service, in bytes.",
            "gauge",
            |s| Some(s.resident_bytes),
        ),
        (
            "process_cpu_seconds_total",
            "CPU time (user and system) of each process of the service, in seconds.",
            "counter",
            |s| Some(s.cpu_seconds),
        ),
        (
            "process_open_fds",
            "Open file descriptors of each process of the service.",
            "gauge",
            |s| s.open_fds,
        ),
        (
            "process_start_time_seconds",
            "Start time of each process of the service, in seconds since the Unix epoch.",
            "gauge",
            |s| Some(s.start_time_seconds),
        ),
    ];
    for (name, help, kind, value) in metrics {
        header(out, name, help, kind);
        for (labels, stats) in &processes {
            if let Some(value) = value(stats) {
                sample(out, name, "", labels, "");
                float(out, value);
            }
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = write!(out, "# HELP {name} ");
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    let _ = writeln!(out, "\n# TYPE {name} {kind}");
}

/// The start of a sample line: `name suffix{labels,extra} `, without braces when both label
/// lists are empty.
fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, extra: &str) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || !extra.is_empty() {
        out.push('{');
        out.push_str(labels);
        if !labels.is_empty() && !extra.is_empty() {
            out.push(',');
        }
        out.push_str(extra);
        out.push('}');
    }
    out.push(' ');
}

/// A sample value as the format spells it, and the end of its line.
fn float(out: &mut String, value: f64) {
    let _ = if value.is_nan() {
        writeln!(out, "NaN")
    } else if value == f64::INFINITY {
        writeln!(out, "+Inf")
    } else if value == f64::NEG_INFINITY {
        writeln!(out, "-Inf")
    } else {
        writeln!(out, "{value}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_spelled_as_the_format_wants() {
        let mut out = String::new();
        for value in [1.0, 0.005, f64::INFINITY, f64::NAN] {
            float(&mut out, value);
        }
        assert_eq!(out, "1\n0.005\n+Inf\nNaN\n");
        out.clear();
        sample(&mut out, "a", "", "", "");
        sample(&mut out, "h", "_bucket", "a=\"1\"", "le=\"2\"");
        sample(&mut out, "h", "_sum", "", "x=\"1\"");
        assert_eq!(out, "a h_bucket{a=\"1\",le=\"2\"} h_sum{x=\"1\"} ");
    }
}
