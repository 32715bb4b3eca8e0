//! The memory every worker counts in: one anonymous `MAP_SHARED` mapping, made before the first
//! fork, so that the parent can still read what a worker counted after it is gone.
//!
//! Everything in it is an `AtomicU64`: no lock that a killed writer could leave held.
//!
//! - a table of series keys (open addressing; an entry is published by one compare-and-swap of
//!   the offset of a record written beforehand into an append-only arena, so a writer killed
//!   halfway leaves at most some unused arena words);
//! - the list of records offered to the table, appended to before the compare-and-swap: a
//!   scrape walks the keys in use instead of the whole table;
//! - one row of value cells per worker slot, a worker writing only its own row;
//! - a "retired" row: what the workers that were reaped had counted;
//! - a sequence number the parent makes odd while it folds a reaped worker's row into the
//!   retired row, so that a reader retries instead of seeing that row twice or not at all.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

/// Worker processes that can hold a row at once (including the extra ones of a rolling
/// restart); a worker beyond it records into a row of its own that no scrape sees.
pub(crate) const SLOTS: usize = 64;
/// Value cells per row: a counter or gauge takes one, a histogram one per bucket plus two.
pub(crate) const CELLS: usize = 1 << 18;
/// Entries of the key table: families, series and help texts.
const TABLE: usize = 1 << 16;
/// Words of key and help text storage.
const ARENA: usize = 1 << 20;
const HEADER: usize = 64;

const H_SEQ: usize = 0;
const H_CELLS: usize = 1;
const H_ARENA: usize = 2;
const H_SLOTS_USED: usize = 3;
const H_PARENT: usize = 4;
const H_CONFIGURED: usize = 5;
const H_READY: usize = 6;
const H_LISTED: usize = 7;
const H_EXITS: usize = 8;

const OWNERS: usize = HEADER;
const INDEXES: usize = OWNERS + SLOTS;
const TABLE_AT: usize = INDEXES + SLOTS;
/// Records offered to the table, in the order they were written: at most one per entry,
/// plus those that lost a race to publish the same key.
const LISTED_AT: usize = TABLE_AT + TABLE;
const ARENA_AT: usize = LISTED_AT + TABLE;
const RETIRED_AT: usize = ARENA_AT + ARENA;
const WORDS: usize = RETIRED_AT + CELLS * (SLOTS + 1);

/// Words of a record before its text.
const RECORD: usize = 6;

/// How long a reader retries while the parent folds a row before it gives up waiting.
const CONSISTENT_WITHIN: Duration = Duration::from_millis(200);

/// What a table entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A metric name: its series count, help text and metric kind.
    Family,
    Counter,
    /// Summed over the workers.
    Gauge,
    /// One series per live worker, labelled `worker`.
    WorkerGauge,
    Histogram,
    Text,
}

impl Kind {
    fn code(self) -> u64 {
        match self {
            Kind::Family => 1,
            Kind::Counter => 2,
            Kind::Gauge => 3,
            Kind::WorkerGauge => 4,
            Kind::Histogram => 5,
            Kind::Text => 6,
        }
    }

    fn from_code(code: u64) -> Option<Kind> {
        Some(match code {
            1 => Kind::Family,
            2 => Kind::Counter,
            3 => Kind::Gauge,
            4 => Kind::WorkerGauge,
            5 => Kind::Histogram,
            6 => Kind::Text,
            _ => return None,
        })
    }
}

/// Why the parent reaped a worker, counted in `buvar_worker_exits_total{cause}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitCause {
    /// It exited by itself with a non-zero status.
    Crash,
    /// It exited by itself with status 0 without being asked.
    Exited,
    /// A signal nobody in the supervisor sent killed it (kill -9 by an operator, OOM killer).
    Signal,
    /// It was asked to stop while the service runs on: `max_requests`, a rolling restart,
    /// SIGTTOU.
    Recycled,
    /// The supervisor killed it because its runtime stopped ticking.
    Heartbeat,
    /// The supervisor killed it because it did not become ready in time.
    NotReady,
    /// It stopped because the service stops.
    Shutdown,
}

impl ExitCause {
    pub(crate) const ALL: [ExitCause; 7] = [
        ExitCause::Crash,
        ExitCause::Exited,
        ExitCause::Signal,
        ExitCause::Recycled,
        ExitCause::Heartbeat,
        ExitCause::NotReady,
        ExitCause::Shutdown,
    ];

    /// The value of the `cause` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ExitCause::Crash => "crash",
            ExitCause::Exited => "exited",
            ExitCause::Signal => "signal",
            ExitCause::Recycled => "recycled",
            ExitCause::Heartbeat => "heartbeat",
            ExitCause::NotReady => "not_ready",
            ExitCause::Shutdown => "shutdown",
        }
    }

    fn word(self) -> usize {
        H_EXITS + ExitCause::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// A record of the key table, as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) labels: String,
    /// A series' first cell; a family's record offset otherwise unused.
    pub(crate) cell: usize,
    at: usize,
}

/// The shared mapping. Made once per process tree and never unmapped.
#[derive(Debug)]
pub(crate) struct Region {
    words: &'static [AtomicU64],
    buckets: &'static [f64],
}

impl Region {
    /// Maps a fresh region; `buckets` are the histogram bucket bounds every worker uses.
    pub(crate) fn create(buckets: &[f64]) -> std::io::Result<Region> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
        let len = NonZeroUsize::new(WORDS * 8).ok_or_else(|| std::io::Error::other("empty"))?;
        // SAFETY: a fresh anonymous mapping aliases nothing; it is never unmapped, so the
        // slice below stays valid for the life of the process (and of its forks).
        let words = unsafe {
            let ptr = mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                // Pages are only backed once touched: most of the rows are never used.
                MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE,
            )
            .map_err(std::io::Error::from)?;
            std::slice::from_raw_parts(ptr.as_ptr().cast::<AtomicU64>(), WORDS)
        };
        words[H_ARENA].store(1, Ordering::Relaxed);
        words[H_PARENT].store(u64::from(std::process::id()), Ordering::Relaxed);
        Ok(Region {
            words,
            buckets: Box::leak(buckets.into()),
        })
    }

    pub(crate) fn buckets(&self) -> &'static [f64] {
        self.buckets
    }

    /// Cells a series of `kind` takes.
    pub(crate) fn width(&self, kind: Kind) -> usize {
        match kind {
            Kind::Histogram => self.buckets.len() + 2,
            Kind::Counter | Kind::Gauge | Kind::WorkerGauge => 1,
            Kind::Family | Kind::Text => 0,
        }
    }

    fn word(&self, at: usize) -> &'static AtomicU64 {
        &self.words[at]
    }

    /// The pid of the process that made the region (the supervisor, when forked).
    pub(crate) fn parent(&self) -> u32 {
        u32::try_from(self.word(H_PARENT).load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Claims a free row for this process, as worker `index`.
    pub(crate) fn claim(&self, index: usize) -> Option<usize> {
        let pid = u64::from(std::process::id());
        for slot in 0..SLOTS {
            let owner = self.word(OWNERS + slot);
            if owner
                .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.word(INDEXES + slot)
                    .store(index as u64, Ordering::Relaxed);
                self.word(H_SLOTS_USED)
                    .fetch_max(slot as u64 + 1, Ordering::AcqRel);
                return Some(slot);
            }
        }
        None
    }

    /// The cells of one row (`None`: the retired row).
    pub(crate) fn row(&self, slot: Option<usize>) -> &'static [AtomicU64] {
        let start = RETIRED_AT + CELLS * slot.map_or(0, |slot| slot + 1);
        &self.words[start..start + CELLS]
    }

    /// Live rows: `(slot, pid, worker index)`.
    pub(crate) fn owners(&self) -> Vec<(usize, u32, usize)> {
        (0..self.slots_used())
            .filter_map(|slot| {
                let pid = self.word(OWNERS + slot).load(Ordering::Acquire);
                let index = self.word(INDEXES + slot).load(Ordering::Relaxed);
                (pid != 0).then(|| {
                    (
                        slot,
                        u32::try_from(pid).unwrap_or(0),
                        usize::try_from(index).unwrap_or(0),
                    )
                })
            })
            .collect()
    }

    fn slots_used(&self) -> usize {
        usize::try_from(self.word(H_SLOTS_USED).load(Ordering::Acquire))
            .unwrap_or(SLOTS)
            .min(SLOTS)
    }

    /// Finds the record of `kind`, `name`, `labels`, or adds it; `None` when the region is full.
    pub(crate) fn find_or_add(&self, kind: Kind, name: &str, labels: &str) -> Option<Entry> {
        self.lookup(kind, name, labels, true)
    }

    /// Finds the record of `kind`, `name`, `labels`.
    pub(crate) fn find(&self, kind: Kind, name: &str, labels: &str) -> Option<Entry> {
        self.lookup(kind, name, labels, false)
    }

    fn lookup(&self, kind: Kind, name: &str, labels: &str, add: bool) -> Option<Entry> {
        let hash = hash(kind, name, labels);
        let mut mine = None;
        for probe in 0..TABLE {
            let slot = self.word(TABLE_AT + (hash as usize).wrapping_add(probe) % TABLE);
            let mut at = slot.load(Ordering::Acquire);
            if at == 0 {
                if !add {
                    return None;
                }
                let record = match mine {
                    Some(record) => record,
                    None => {
                        let record = self.write_record(hash, kind, name, labels)?;
                        self.list(record)?;
                        mine = Some(record);
                        record
                    }
                };
                match slot.compare_exchange(0, record, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return self.entry(record),
                    Err(current) => at = current,
                }
            }
            let entry = self.entry(at)?;
            if self.word(ARENA_AT + at as usize).load(Ordering::Relaxed) == hash
                && entry.kind == kind
                && entry.name == name
                && entry.labels == labels
            {
                return Some(entry);
            }
        }
        None
    }

    /// Lists a record before it is offered to the table, so that every entry is listed even
    /// if its writer is killed right after publishing it; `None` when the list is full.
    fn list(&self, record: u64) -> Option<()> {
        let at = self.word(H_LISTED).fetch_add(1, Ordering::Relaxed) as usize;
        (at < TABLE).then(|| {
            self.word(LISTED_AT + at).store(record, Ordering::Release);
        })
    }

    /// Whether the record at `at`, written with `hash`, is the table's entry for its key (and
    /// not a copy that lost the race to publish it).
    fn published(&self, at: u64, hash: u64) -> bool {
        for probe in 0..TABLE {
            match self
                .word(TABLE_AT + (hash as usize).wrapping_add(probe) % TABLE)
                .load(Ordering::Acquire)
            {
                0 => return false,
                slot if slot == at => return true,
                _ => {}
            }
        }
        false
    }

    fn write_record(&self, hash: u64, kind: Kind, name: &str, labels: &str) -> Option<u64> {
        let text = name.len() + labels.len();
        let words = RECORD + text.div_ceil(8);
        let at = self
            .word(H_ARENA)
            .fetch_add(words as u64, Ordering::Relaxed) as usize;
        if at + words > ARENA {
            return None;
        }
        let width = self.width(kind);
        let cell = if width > 0 {
            let cell = self
                .word(H_CELLS)
                .fetch_add(width as u64, Ordering::Relaxed) as usize;
            if cell + width > CELLS {
                return None;
            }
            cell
        } else {
            0
        };
        let base = ARENA_AT + at;
        self.word(base).store(hash, Ordering::Relaxed);
        self.word(base + 1).store(kind.code(), Ordering::Relaxed);
        self.word(base + 2).store(
            ((name.len() as u64) << 32) | labels.len() as u64,
            Ordering::Relaxed,
        );
        self.word(base + 3).store(cell as u64, Ordering::Relaxed);
        let bytes: Vec<u8> = name.bytes().chain(labels.bytes()).collect();
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.word(base + RECORD + i)
                .store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        Some(at as u64)
    }

    fn entry(&self, at: u64) -> Option<Entry> {
        let at = usize::try_from(at).ok()?;
        if at == 0 || at + RECORD > ARENA {
            return None;
        }
        let base = ARENA_AT + at;
        let kind = Kind::from_code(self.word(base + 1).load(Ordering::Relaxed))?;
        let lens = self.word(base + 2).load(Ordering::Relaxed);
        let (name_len, labels_len) = ((lens >> 32) as usize, (lens & 0xffff_ffff) as usize);
        let text = name_len + labels_len;
        if at + RECORD + text.div_ceil(8) > ARENA {
            return None;
        }
        let mut bytes = Vec::with_capacity(text.div_ceil(8) * 8);
        for i in 0..text.div_ceil(8) {
            bytes.extend_from_slice(
                &self
                    .word(base + RECORD + i)
                    .load(Ordering::Relaxed)
                    .to_le_bytes(),
            );
        }
        bytes.truncate(text);
        let labels = bytes.split_off(name_len);
        Some(Entry {
            kind,
            name: String::from_utf8(bytes).ok()?,
            labels: String::from_utf8(labels).ok()?,
            cell: self.word(base + 3).load(Ordering::Relaxed) as usize,
            at,
        })
    }

    /// A family's series count, help text offset and metric kind, as shared words.
    pub(crate) fn family_words(
        &self,
        family: &Entry,
    ) -> (&'static AtomicU64, &'static AtomicU64, &'static AtomicU64) {
        let base = ARENA_AT + family.at;
        (
            self.word(base + 3),
            self.word(base + 4),
            self.word(base + 5),
        )
    }

    /// The family's help text, if one was given.
    pub(crate) fn help(&self, family: &Entry) -> Option<String> {
        let (_, help, _) = self.family_words(family);
        self.entry(help.load(Ordering::Acquire))
            .filter(|text| text.kind == Kind::Text)
            .map(|text| text.name)
    }

    /// Sets the family's help text unless it has one.
    pub(crate) fn set_help(&self, family: &Entry, text: &str) {
        let (_, help, _) = self.family_words(family);
        if help.load(Ordering::Acquire) != 0 {
            return;
        }
        if let Some(record) = self.write_record(0, Kind::Text, text, "") {
            let _ = help.compare_exchange(0, record, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// The family's metric kind (set by whoever registered it first).
    pub(crate) fn family_kind(&self, family: &Entry) -> Option<Kind> {
        let (_, _, kind) = self.family_words(family);
        Kind::from_code(kind.load(Ordering::Acquire))
    }

    /// Sets the family's metric kind if it has none; returns the kind it has.
    pub(crate) fn claim_family_kind(&self, family: &Entry, wanted: Kind) -> Option<Kind> {
        let (_, _, kind) = self.family_words(family);
        match kind.compare_exchange(0, wanted.code(), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(wanted),
            Err(code) => Kind::from_code(code),
        }
    }

    /// Every record of the table, in the order they were added: the cost is that of the keys
    /// in use, not of the table's size.
    #[cfg(any(target_os = "linux", test))]
    pub(crate) fn entries(&self) -> Vec<Entry> {
        (0..self.listed())
            .filter_map(|position| self.listed_entry(position))
            .collect()
    }

    /// Places taken in the list of records so far.
    pub(crate) fn listed(&self) -> usize {
        (self.word(H_LISTED).load(Ordering::Acquire) as usize).min(TABLE)
    }

    /// The record at `position` of the list if it is published: `None` for a copy that lost
    /// the race to publish its key, one whose writer is still at it or was killed.
    pub(crate) fn listed_entry(&self, position: usize) -> Option<Entry> {
        let at = self.word(LISTED_AT + position).load(Ordering::Acquire);
        let record = usize::try_from(at)
            .ok()
            .filter(|at| (1..ARENA).contains(at))?;
        let hash = self.word(ARENA_AT + record).load(Ordering::Relaxed);
        self.published(at, hash).then(|| self.entry(at)).flatten()
    }

    /// Runs `read` until no fold happened during it (or the parent took too long: then the
    /// last run's result, which may count a row twice, is better than no answer).
    pub(crate) fn consistent<T>(&self, mut read: impl FnMut(&Region) -> T) -> T {
        let seq = self.word(H_SEQ);
        let deadline = Instant::now() + CONSISTENT_WITHIN;
        loop {
            let before = seq.load(Ordering::Acquire);
            let result = read(self);
            fence(Ordering::Acquire);
            let after = seq.load(Ordering::Relaxed);
            if (before == after && before % 2 == 0) || Instant::now() >= deadline {
                return result;
            }
            std::thread::yield_now();
        }
    }

    /// The sum of `cell` over the retired row and every row, counting `float` cells as `f64`.
    pub(crate) fn total(&self, cell: usize, float: bool) -> (u64, f64) {
        let rows = std::iter::once(None).chain((0..self.slots_used()).map(Some));
        let mut whole = 0u64;
        let mut real = 0f64;
        for row in rows {
            let value = self.row(row)[cell].load(Ordering::Relaxed);
            if float {
                real += f64::from_bits(value);
            } else {
                whole = whole.wrapping_add(value);
            }
        }
        (whole, real)
    }

    /// Folds the row of the reaped process `pid` into the retired row and frees it. Called by
    /// the parent only; it neither blocks nor allocates beyond the list of entries.
    #[cfg(target_os = "linux")]
    pub(crate) fn retire(&self, pid: u32, cause: ExitCause) {
        self.word(cause.word()).fetch_add(1, Ordering::Relaxed);
        let Some(slot) = (0..SLOTS)
            .find(|slot| self.word(OWNERS + slot).load(Ordering::Acquire) == u64::from(pid))
        else {
            return;
        };
        let row = self.row(Some(slot));
        let retired = self.row(None);
        let seq = self.word(H_SEQ);
        seq.fetch_add(1, Ordering::AcqRel);
        fence(Ordering::Release);
        for entry in self.entries() {
            let width = self.width(entry.kind);
            match entry.kind {
                Kind::Counter => add(&retired[entry.cell], &row[entry.cell]),
                Kind::Histogram => {
                    let sum = entry.cell + width - 1;
                    for cell in entry.cell..sum {
                        add(&retired[cell], &row[cell]);
                    }
                    add_float(
                        &retired[sum],
                        f64::from_bits(row[sum].load(Ordering::Relaxed)),
                    );
                }
                _ => {}
            }
        }
        let used = (self.word(H_CELLS).load(Ordering::Acquire) as usize).min(CELLS);
        for cell in &row[..used] {
            cell.store(0, Ordering::Relaxed);
        }
        seq.fetch_add(1, Ordering::Release);
        self.word(OWNERS + slot).store(0, Ordering::Release);
    }

    /// The supervisor's counts: workers configured and ready.
    #[cfg(target_os = "linux")]
    pub(crate) fn set_workers(&self, configured: usize, ready: usize) {
        self.word(H_CONFIGURED)
            .store(configured as u64, Ordering::Relaxed);
        self.word(H_READY).store(ready as u64, Ordering::Relaxed);
    }

    /// Workers configured and ready, as the supervisor last said.
    pub(crate) fn workers(&self) -> (u64, u64) {
        (
            self.word(H_CONFIGURED).load(Ordering::Relaxed),
            self.word(H_READY).load(Ordering::Relaxed),
        )
    }

    /// How many workers exited for `cause`.
    pub(crate) fn exits(&self, cause: ExitCause) -> u64 {
        self.word(cause.word()).load(Ordering::Relaxed)
    }
}

#[cfg(target_os = "linux")]
fn add(total: &AtomicU64, part: &AtomicU64) {
    total.fetch_add(part.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Adds to a cell holding an `f64`'s bits.
pub(crate) fn add_float(cell: &AtomicU64, value: f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some((f64::from_bits(bits) + value).to_bits())
    });
}

/// FNV-1a: the same in every process, unlike the standard library's seeded hasher.
fn hash(kind: Kind, name: &str, labels: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in std::iter::once(kind.code() as u8)
        .chain(name.bytes())
        .chain(std::iter::once(0xff))
        .chain(labels.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        Region::create(&[0.1, 1.0]).unwrap()
    }

    #[test]
    fn a_record_is_found_again_and_keys_differ_by_kind_and_labels() {
        let region = region();
        let a = region
            .find_or_add(Kind::Counter, "hits_total", "a=\"1\"")
            .unwrap();
        let again = region
            .find_or_add(Kind::Counter, "hits_total", "a=\"1\"")
            .unwrap();
        let other = region
            .find_or_add(Kind::Counter, "hits_total", "a=\"2\"")
            .unwrap();
        let gauge = region
            .find_or_add(Kind::Gauge, "hits_total", "a=\"1\"")
            .unwrap();
        assert_eq!(a, again);
        assert_ne!(a.cell, other.cell);
        assert_ne!(a.cell, gauge.cell);
        assert_eq!(
            region.find(Kind::Counter, "hits_total", "a=\"2\""),
            Some(other)
        );
        assert_eq!(region.find(Kind::Counter, "nope", ""), None);
        assert_eq!(region.entries().len(), 3);
    }

    #[test]
    fn a_retired_row_moves_into_the_total_without_changing_it() {
        let region = region();
        let counter = region.find_or_add(Kind::Counter, "c", "").unwrap();
        let histogram = region.find_or_add(Kind::Histogram, "h", "").unwrap();
        let gauge = region.find_or_add(Kind::Gauge, "g", "").unwrap();
        let slot = region.claim(0).unwrap();
        let row = region.row(Some(slot));
        row[counter.cell].store(5, Ordering::Relaxed);
        row[histogram.cell + 1].store(2, Ordering::Relaxed);
        row[histogram.cell + 3].store(3.5f64.to_bits(), Ordering::Relaxed);
        row[gauge.cell].store(7f64.to_bits(), Ordering::Relaxed);
        assert_eq!(region.total(counter.cell, false).0, 5);
        assert_eq!(region.total(gauge.cell, true).1, 7.0);
        region.retire(std::process::id(), ExitCause::Signal);
        assert_eq!(region.total(counter.cell, false).0, 5);
        assert_eq!(region.total(histogram.cell + 1, false).0, 2);
        assert_eq!(region.total(histogram.cell + 3, true).1, 3.5);
        // A gone worker's gauge is gone with it.
        assert_eq!(region.total(gauge.cell, true).1, 0.0);
        assert!(region.owners().is_empty());
        assert_eq!(region.exits(ExitCause::Signal), 1);
        // The freed row starts from zero for the next worker.
        assert_eq!(region.claim(1), Some(slot));
        assert_eq!(
            region.row(Some(slot))[counter.cell].load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn entries_are_the_published_records_only() {
        let region = region();
        let first = region.find_or_add(Kind::Counter, "c", "a=\"1\"").unwrap();
        // A writer that lost the race to publish the same key, and one killed after taking
        // its place in the list.
        let hash = hash(Kind::Counter, "c", "a=\"1\"");
        let copy = region
            .write_record(hash, Kind::Counter, "c", "a=\"1\"")
            .unwrap();
        region.list(copy).unwrap();
        region.word(H_LISTED).fetch_add(1, Ordering::Relaxed);
        let second = region.find_or_add(Kind::Gauge, "g", "").unwrap();
        assert_eq!(region.entries(), [first, second]);
    }

    #[test]
    fn help_and_family_kind_are_set_once() {
        let region = region();
        let family = region.find_or_add(Kind::Family, "c", "").unwrap();
        assert_eq!(region.help(&family), None);
        region.set_help(&family, "first");
        region.set_help(&family, "second");
        assert_eq!(region.help(&family).as_deref(), Some("first"));
        assert_eq!(
            region.claim_family_kind(&family, Kind::Counter),
            Some(Kind::Counter)
        );
        assert_eq!(
            region.claim_family_kind(&family, Kind::Gauge),
            Some(Kind::Counter)
        );
        assert_eq!(region.family_kind(&family), Some(Kind::Counter));
    }
}
