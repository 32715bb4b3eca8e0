//! The Prometheus text exposition format 0.0.4 of the whole service: every worker's row, the
//! retired row, the supervisor's counts and each process's resources.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::process::ProcessStats;
use super::region::{Entry, ExitCause, Kind, Region};

/// The `Content-Type` of the format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family: its kind, help and series (labels, first cell), sorted.
#[derive(Debug)]
struct Family {
    entry: Entry,
    kind: Kind,
    help: Option<String>,
    series: Vec<(String, usize)>,
}

/// The keys of the region as this process has read them so far. Keys are only ever added, so
/// a scrape reads those listed since the one before, instead of every key again.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// Places of the region's list read so far.
    read: usize,
    /// Places whose record was not published when read (mostly a writer still at it).
    unpublished: Vec<usize>,
    /// Records whose family has no kind yet.
    waiting: Vec<Entry>,
    families: BTreeMap<String, Family>,
}

impl Catalog {
    /// Takes in the keys added since the last call.
    fn update(&mut self, region: &Region) {
        let listed = region.listed();
        let mut places = std::mem::take(&mut self.unpublished);
        places.extend(self.read..listed);
        self.read = listed;
        for place in places {
            match region.listed_entry(place) {
                Some(entry) => self.waiting.push(entry),
                None => self.unpublished.push(place),
            }
        }
        // Families first, then their series, whatever order they were listed in.
        let (families, series): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|entry| entry.kind == Kind::Family);
        for entry in families {
            match region.family_kind(&entry) {
                Some(kind) => {
                    self.families.insert(
                        entry.name.clone(),
                        Family {
                            kind,
                            help: None,
                            series: Vec::new(),
                            entry,
                        },
                    );
                }
                None => self.waiting.push(entry),
            }
        }
        for entry in series {
            match self.families.get_mut(&entry.name) {
                Some(family) if family.kind == entry.kind => {
                    let series = (entry.labels, entry.cell);
                    let at = family.series.partition_point(|known| *known < series);
                    family.series.insert(at, series);
                }
                // Registered as another kind than its family's: never recorded into.
                Some(_) => {}
                None => self.waiting.push(entry),
            }
        }
        // Described after it was first used, maybe.
        for family in self.families.values_mut().filter(|f| f.help.is_none()) {
            family.help = region.help(&family.entry);
        }
    }
}

/// Renders the service's metrics.
pub(crate) fn render(region: &Region, supervised: bool, catalog: &mut Catalog) -> String {
    catalog.update(region);
    let mut out = String::with_capacity(64 * 1024);
    region.consistent(|region| {
        out.clear();
        let owners = region.owners();
        for (name, family) in &catalog.families {
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
    use std::sync::atomic::Ordering;

    use super::*;

    /// The sample lines of the region's own series.
    fn samples(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.starts_with("process_"))
            .collect()
    }

    #[test]
    fn a_scrape_takes_in_the_keys_added_since_the_one_before() {
        let region = Region::create(&[1.0]).unwrap();
        let row = region.row(Some(region.claim(0).unwrap()));
        let jobs = region.find_or_add(Kind::Family, "jobs_total", "").unwrap();
        region.claim_family_kind(&jobs, Kind::Counter);
        let counter = |labels: &str, value: u64| {
            let series = region
                .find_or_add(Kind::Counter, "jobs_total", labels)
                .unwrap();
            row[series.cell].store(value, Ordering::Relaxed);
        };
        let mut catalog = Catalog::default();
        counter("q=\"b\"", 2);
        let first = render(&region, false, &mut catalog);
        assert_eq!(samples(&first), ["jobs_total{q=\"b\"} 2"]);
        assert!(first.contains("# HELP jobs_total (no description given)\n"));

        counter("q=\"a\"", 1);
        // A series whose family has no kind yet waits for it.
        let late = region.find_or_add(Kind::Gauge, "late", "").unwrap();
        row[late.cell].store(1.5f64.to_bits(), Ordering::Relaxed);
        let second = render(&region, false, &mut catalog);
        assert_eq!(
            samples(&second),
            ["jobs_total{q=\"a\"} 1", "jobs_total{q=\"b\"} 2"]
        );

        let family = region.find_or_add(Kind::Family, "late", "").unwrap();
        region.claim_family_kind(&family, Kind::Gauge);
        region.set_help(&jobs, "Jobs done.");
        let third = render(&region, false, &mut catalog);
        assert_eq!(
            samples(&third),
            ["jobs_total{q=\"a\"} 1", "jobs_total{q=\"b\"} 2", "late 1.5"]
        );
        assert!(third.contains("# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n"));
        // A fresh catalog reads the same.
        let fresh = render(&region, false, &mut Catalog::default());
        let own = |text: &str| text.split("# HELP process_").next().unwrap().to_owned();
        assert_eq!(own(&fresh), own(&third));
    }

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
