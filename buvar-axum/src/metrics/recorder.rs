//! The `metrics` facade's recorder: a worker's counters, gauges and histograms are cells of its
//! own row of the shared region.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

use super::region::{Entry, Kind, Region, add_float};

/// The label every series beyond a metric's series limit is folded into.
pub(crate) const OVERFLOW_LABELS: &str = "overflow=\"true\"";

/// Records into one row of a [`Region`].
#[derive(Debug)]
pub(crate) struct RowRecorder {
    region: &'static Region,
    row: &'static [AtomicU64],
    series_limit: u64,
    per_worker: HashSet<String>,
    /// Handles made so far, by key: counters, gauges, histograms.
    cache: [RwLock<HashMap<Key, Handle>>; 3],
    warned: Mutex<HashSet<String>>,
}

#[derive(Debug, Clone)]
enum Handle {
    Counter(Arc<Cell>),
    Gauge(Arc<Cell>),
    Histogram(Arc<Buckets>),
    Noop,
}

impl RowRecorder {
    pub(crate) fn new(
        region: &'static Region,
        row: &'static [AtomicU64],
        series_limit: u64,
        per_worker: HashSet<String>,
    ) -> Self {
        Self {
            region,
            row,
            series_limit,
            per_worker,
            cache: Default::default(),
            warned: Mutex::default(),
        }
    }

    fn handle(&self, kind: Kind, key: &Key) -> Handle {
        let cache = &self.cache[match kind {
            Kind::Counter => 0,
            Kind::Histogram => 2,
            _ => 1,
        }];
        let cached = cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned();
        if let Some(handle) = cached {
            return handle;
        }
        let handle = self.make(kind, key);
        cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(handle)
            .clone()
    }

    fn make(&self, kind: Kind, key: &Key) -> Handle {
        let name = sanitize_name(key.name());
        let kind = match kind {
            Kind::Gauge if self.per_worker.contains(&name) => Kind::WorkerGauge,
            kind => kind,
        };
        let Some(family) = self.family(&name, kind) else {
            return Handle::Noop;
        };
        let labels = render_labels(key);
        let series = match self.region.find(kind, &name, &labels) {
            Some(series) => Some(series),
            None => self.admit(&family, kind, &name, &labels),
        };
        let Some(series) = series else {
            self.warn_once(
                &name,
                "the metrics region is full; this series is not recorded",
            );
            return Handle::Noop;
        };
        let width = self.region.width(kind);
        let cells = &self.row[series.cell..series.cell + width];
        match kind {
            Kind::Counter => Handle::Counter(Arc::new(Cell(&cells[0]))),
            Kind::Gauge | Kind::WorkerGauge => Handle::Gauge(Arc::new(Cell(&cells[0]))),
            Kind::Histogram => Handle::Histogram(Arc::new(Buckets {
                bounds: self.region.buckets(),
                cells,
            })),
            Kind::Family | Kind::Text => Handle::Noop,
        }
    }

    /// The family of `name`, if it is (or now becomes) a metric of `kind`.
    fn family(&self, name: &str, kind: Kind) -> Option<Entry> {
        let family = self.region.find_or_add(Kind::Family, name, "")?;
        match self.region.claim_family_kind(&family, kind) {
            Some(has) if has == kind => Some(family),
            _ => {
                self.warn_once(
                    name,
                    "this metric was registered before as another kind; not recorded",
                );
                None
            }
        }
    }

    /// Adds a series to `family` unless that makes more than the series limit: then the
    /// family's overflow series takes its values.
    fn admit(&self, family: &Entry, kind: Kind, name: &str, labels: &str) -> Option<Entry> {
        let (count, _, _) = self.region.family_words(family);
        if count.fetch_add(1, Ordering::AcqRel) < self.series_limit {
            return self.region.find_or_add(kind, name, labels);
        }
        count.fetch_sub(1, Ordering::AcqRel);
        self.warn_once(
            name,
            "more label combinations than `[metrics] series_limit`; the rest are counted in \
             the series labelled overflow=\"true\"",
        );
        self.region.find_or_add(kind, name, OVERFLOW_LABELS)
    }

    fn warn_once(&self, name: &str, message: &str) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
        if first {
            tracing::warn!(metric = name, "{message}");
        }
    }

    fn describe(&self, kind: Kind, key: &KeyName, description: &SharedString) {
        let name = sanitize_name(key.as_str());
        let kind = match kind {
            Kind::Gauge if self.per_worker.contains(&name) => Kind::WorkerGauge,
            kind => kind,
        };
        if let Some(family) = self.family(&name, kind) {
            self.region.set_help(&family, description);
        }
    }
}

impl Recorder for RowRecorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(Kind::Counter, &key, &description);
    }

    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(Kind::Gauge, &key, &description);
    }

    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(Kind::Histogram, &key, &description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.handle(Kind::Counter, key) {
            Handle::Counter(cell) => Counter::from_arc(cell),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.handle(Kind::Gauge, key) {
            Handle::Gauge(cell) => Gauge::from_arc(cell),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.handle(Kind::Histogram, key) {
            Handle::Histogram(buckets) => Histogram::from_arc(buckets),
            _ => Histogram::noop(),
        }
    }
}

/// One cell: a counter's `u64`, or a gauge's `f64` bits.
#[derive(Debug)]
struct Cell(&'static AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        add_float(self.0, value);
    }

    fn decrement(&self, value: f64) {
        add_float(self.0, -value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A histogram's cells: one count per bucket bound, the `+Inf` bucket, then the sum's bits.
/// Counts are per bucket, not cumulative, so one observation is one increment and the count
/// (their total) always agrees with the buckets, even if the worker is killed in between.
#[derive(Debug)]
struct Buckets {
    bounds: &'static [f64],
    cells: &'static [AtomicU64],
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.cells[bucket].fetch_add(1, Ordering::Relaxed);
        add_float(&self.cells[self.bounds.len() + 1], value);
    }
}

/// A Prometheus metric or label name: anything else than `[a-zA-Z0-9_:]` becomes `_`, and a
/// leading digit gets a `_` before it.
pub(crate) fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `a="1",b="2"`, sorted by label name so the order the labels were given in does not matter.
fn render_labels(key: &Key) -> String {
    let mut labels: Vec<(String, &str)> = key
        .labels()
        .map(|label| (sanitize_name(label.key()).replace(':', "_"), label.value()))
        .collect();
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    let mut out = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_into(&mut out, value);
        out.push('"');
    }
    out
}

/// Escapes a label value or help text for the text format: `\`, `"` and newlines.
pub(crate) fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(limit: u64) -> (&'static Region, RowRecorder) {
        let region: &'static Region = Box::leak(Box::new(Region::create(&[0.5, 1.0]).unwrap()));
        let slot = region.claim(0).unwrap();
        let recorder = RowRecorder::new(
            region,
            region.row(Some(slot)),
            limit,
            HashSet::from(["per_worker".to_owned()]),
        );
        (region, recorder)
    }

    fn total(region: &Region, kind: Kind, name: &str, labels: &str) -> u64 {
        let series = region.find(kind, name, labels).unwrap();
        region.total(series.cell, false).0
    }

    #[test]
    fn facade_calls_land_in_the_shared_row() {
        let (region, recorder) = recorder(10);
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("jobs.done", "queue" => "a").increment(2);
            metrics::counter!("jobs.done", "queue" => "a").increment(1);
            metrics::histogram!("latency").record(0.7);
            metrics::histogram!("latency").record(5.0);
            metrics::gauge!("per_worker").set(3.0);
        });
        assert_eq!(total(region, Kind::Counter, "jobs_done", "queue=\"a\""), 3);
        let latency = region.find(Kind::Histogram, "latency", "").unwrap();
        let buckets: Vec<u64> = (0..3)
            .map(|i| region.total(latency.cell + i, false).0)
            .collect();
        assert_eq!(buckets, [0, 1, 1]);
        assert_eq!(region.total(latency.cell + 3, true).1, 5.7);
        assert!(region.find(Kind::WorkerGauge, "per_worker", "").is_some());
    }

    #[test]
    fn label_combinations_beyond_the_limit_fold_into_one_overflow_series() {
        let (region, recorder) = recorder(3);
        metrics::with_local_recorder(&recorder, || {
            for user in 0..100 {
                metrics::counter!("logins_total", "user" => user.to_string()).increment(1);
            }
        });
        let series: Vec<_> = region
            .entries()
            .into_iter()
            .filter(|e| e.kind == Kind::Counter)
            .collect();
        assert_eq!(series.len(), 4, "{series:?}");
        assert_eq!(
            total(region, Kind::Counter, "logins_total", OVERFLOW_LABELS),
            97
        );
    }

    #[test]
    fn a_name_registered_as_two_kinds_records_only_the_first() {
        let (region, recorder) = recorder(10);
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("twice").increment(1);
            metrics::gauge!("twice").set(1.0);
        });
        assert!(region.find(Kind::Gauge, "twice", "").is_none());
    }

    #[test]
    fn labels_are_escaped_and_sorted() {
        let key = Key::from_parts(
            "x",
            vec![
                metrics::Label::new("b", "q\"\\\n"),
                metrics::Label::new("a.b", "1"),
            ],
        );
        assert_eq!(render_labels(&key), "a_b=\"1\",b=\"q\\\"\\\\\\n\"");
        assert_eq!(
            sanitize_name("9http.requests-total"),
            "_9http_requests_total"
        );
    }
}
