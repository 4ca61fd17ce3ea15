//! The result cache's table logic, free of PostgreSQL: keys, fixed-size entries, bounded
//! probing and usage-decay eviction. The extension lays these entries out in shared memory
//! (one lock per partition, see `src/cache.rs`); [`LocalCache`] is the same table in process
//! memory (the fallback without `shared_preload_libraries`, and the standalone benchmark's).
//!
//! * Key = (model id, 128-bit hash of the normalized descriptor). The model id is derived from
//!   the model's content checksum and the settings that change its output (`max_length`), so a
//!   different model can never read another model's entries — no stale results after a switch.
//! * Entries are plain `#[repr(C)]` data with no pointers, valid in shared memory.
//! * A key lives in a window of [`WINDOW`] slots from its home slot. Lookups scan the window
//!   (stopping at the first empty slot); an insert takes the first empty slot, or evicts the
//!   window's least-used entry and halves the window's usage counts (usage decay, as
//!   pg_stat_statements does).
use crate::prediction::Prediction;
use std::cell::{Cell, RefCell};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

/// Slots probed per key.
pub const WINDOW: usize = 8;
/// Usage counts saturate here.
pub const MAX_USAGE: u32 = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Never 0: 0 marks an empty slot.
    pub model: u64,
    pub text: [u64; 2],
}

fn hash64(seed: u64, s: &str) -> u64 {
    // SipHash-1-3 with fixed keys: the same in every backend of one build of txclass, which is
    // all a cache emptied at every server start needs.
    let mut h = DefaultHasher::new();
    seed.hash(&mut h);
    s.hash(&mut h);
    h.finish()
}

/// The cache identity of a model: its content checksum and the settings that change its output.
pub fn model_id(checksum: &str, max_length: usize) -> u64 {
    hash64(max_length as u64, checksum) | 1
}

pub fn key(model: u64, normalized: &str) -> Key {
    Key { model, text: [hash64(0x7478_636c_6173_7331, normalized), hash64(0x7478_636c_6173_7332, normalized)] }
}

#[repr(C)]
#[derive(Debug, Default)]
pub struct Entry {
    pub text: [u64; 2],
    pub model: u64,
    pub label: u32,
    pub confidence: f32,
    /// Bumped by readers holding only a shared lock, hence atomic.
    pub usage: AtomicU32,
    _pad: u32,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.model == 0
    }
    fn holds(&self, k: &Key) -> bool {
        self.model == k.model && self.text == k.text
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Inserted,
    Updated,
    Evicted,
}

fn window(len: usize, k: &Key) -> impl Iterator<Item = usize> {
    let home = (k.text[1] % len.max(1) as u64) as usize;
    (0..WINDOW.min(len)).map(move |i| (home + i) % len)
}

/// Looks `k` up in one partition's entries (caller holds at least a shared lock).
pub fn get(entries: &[Entry], k: &Key) -> Option<Prediction> {
    if entries.is_empty() {
        return None;
    }
    for i in window(entries.len(), k) {
        let e = &entries[i];
        if e.is_empty() {
            return None;
        }
        if e.holds(k) {
            let u = e.usage.load(Ordering::Relaxed);
            if u < MAX_USAGE {
                e.usage.store(u + 1, Ordering::Relaxed); // racy but bounded: a lost bump is harmless
            }
            return Some(Prediction { label: e.label as usize, confidence: e.confidence });
        }
    }
    None
}

/// Inserts or updates `k` in one partition's entries (caller holds the exclusive lock).
pub fn put(entries: &mut [Entry], k: &Key, p: Prediction) -> Option<Put> {
    if entries.is_empty() {
        return None;
    }
    let len = entries.len();
    let mut victim = None;
    let mut least = u32::MAX;
    let mut outcome = Put::Evicted;
    for i in window(len, k) {
        let e = &entries[i];
        if e.holds(k) {
            victim = Some(i);
            outcome = Put::Updated;
            break;
        }
        if e.is_empty() {
            victim = Some(i);
            outcome = Put::Inserted;
            break;
        }
        let u = e.usage.load(Ordering::Relaxed);
        if u < least {
            least = u;
            victim = Some(i);
        }
    }
    let v = victim?;
    if outcome == Put::Evicted {
        for i in window(len, k) {
            let u = entries[i].usage.load(Ordering::Relaxed);
            entries[i].usage.store(u / 2, Ordering::Relaxed);
        }
    }
    let e = &mut entries[v];
    e.model = k.model;
    e.text = k.text;
    e.label = p.label as u32;
    e.confidence = p.confidence;
    e.usage.store(1, Ordering::Relaxed);
    Some(outcome)
}

/// Empties one partition's entries (caller holds the exclusive lock).
pub fn clear(entries: &mut [Entry]) {
    for e in entries.iter_mut() {
        *e = Entry::default();
    }
}

/// Where `classify_descriptors` looks results up before inferring and stores what it inferred.
pub trait ResultCache {
    fn get(&self, k: &Key) -> Option<Prediction>;
    fn put(&self, k: &Key, p: Prediction);
}

/// A cache seen by texts that already missed it: never answers (no second lookup, no second
/// miss counted), fills it with what the model then predicts.
pub struct FillOnly<'a>(pub &'a dyn ResultCache);

impl ResultCache for FillOnly<'_> {
    fn get(&self, _: &Key) -> Option<Prediction> {
        None
    }
    fn put(&self, k: &Key, p: Prediction) {
        self.0.put(k, p)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub capacity: u64,
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
}

/// The table in process memory, one partition. Not `Sync`: one per thread / backend.
pub struct LocalCache {
    entries: RefCell<Vec<Entry>>,
    stats: Cell<Stats>,
}

impl LocalCache {
    pub fn new(capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity);
        v.resize_with(capacity, Entry::default);
        LocalCache { entries: RefCell::new(v), stats: Cell::new(Stats { capacity: capacity as u64, ..Stats::default() }) }
    }
    pub fn stats(&self) -> Stats {
        self.stats.get()
    }
    pub fn reset(&self) {
        clear(&mut self.entries.borrow_mut());
        self.stats.set(Stats { capacity: self.stats.get().capacity, ..Stats::default() });
    }
}

impl ResultCache for LocalCache {
    fn get(&self, k: &Key) -> Option<Prediction> {
        let r = get(&self.entries.borrow(), k);
        let mut s = self.stats.get();
        if r.is_some() {
            s.hits += 1
        } else {
            s.misses += 1
        }
        self.stats.set(s);
        r
    }
    fn put(&self, k: &Key, p: Prediction) {
        let outcome = put(&mut self.entries.borrow_mut(), k, p);
        let mut s = self.stats.get();
        match outcome {
            Some(Put::Inserted) => {
                s.inserts += 1;
                s.entries += 1
            }
            Some(Put::Evicted) => {
                s.inserts += 1;
                s.evictions += 1
            }
            Some(Put::Updated) | None => {}
        }
        self.stats.set(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: usize) -> Prediction {
        Prediction { label, confidence: 0.5 + label as f32 / 1000.0 }
    }

    #[test]
    fn fill_only_fills_without_a_lookup() {
        let c = LocalCache::new(64);
        let k = key(model_id("aaaa", 64), "tesco stores");
        let f = FillOnly(&c);
        assert_eq!(f.get(&k), None);
        f.put(&k, p(7));
        assert_eq!(f.get(&k), None, "a text that missed is not looked up again");
        assert_eq!(c.get(&k), Some(p(7)), "but what it learned is in the cache");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts), (1, 0, 1));
    }

    #[test]
    fn entry_is_plain_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn keys_separate_models_and_texts() {
        let m1 = model_id("aaaa", 64);
        let m2 = model_id("aaab", 64);
        let m3 = model_id("aaaa", 32);
        assert!(m1 != m2 && m1 != m3 && m1 & 1 == 1);
        assert_eq!(key(m1, "walmart #"), key(m1, "walmart #"));
        assert_ne!(key(m1, "walmart #"), key(m2, "walmart #"));
        assert_ne!(key(m1, "walmart #").text, key(m1, "walmart").text);
    }

    #[test]
    fn another_models_entry_is_never_returned() {
        let c = LocalCache::new(64);
        let (a, b) = (model_id("old", 64), model_id("new", 64));
        c.put(&key(a, "tesco stores #"), p(7));
        assert_eq!(c.get(&key(a, "tesco stores #")), Some(p(7)));
        assert_eq!(c.get(&key(b, "tesco stores #")), None);
    }

    #[test]
    fn fills_then_evicts_and_counts() {
        let c = LocalCache::new(100);
        let m = model_id("m", 64);
        for i in 0..1000 {
            c.put(&key(m, &format!("merchant {i}")), p(i % 50));
        }
        let s = c.stats();
        assert_eq!(s.inserts, 1000);
        assert!(s.entries <= 100 && s.entries >= 90, "{s:?}");
        assert_eq!(s.entries + s.evictions, 1000);
        // every entry still present returns what was stored for it
        let mut found = 0;
        for i in 0..1000 {
            if let Some(got) = c.get(&key(m, &format!("merchant {i}"))) {
                assert_eq!(got, p(i % 50));
                found += 1;
            }
        }
        assert_eq!(found as u64, c.stats().entries);
    }

    #[test]
    fn frequently_used_entries_survive_eviction() {
        let c = LocalCache::new(64);
        let m = model_id("m", 64);
        let hot: Vec<Key> = (0..8).map(|i| key(m, &format!("hot {i}"))).collect();
        for k in &hot {
            c.put(k, p(1));
        }
        for round in 0..200 {
            for k in &hot {
                c.get(k);
            }
            c.put(&key(m, &format!("cold {round}")), p(2));
        }
        let alive = hot.iter().filter(|k| c.get(k).is_some()).count();
        assert!(alive >= 6, "only {alive} of 8 hot keys survived 200 cold inserts");
    }

    #[test]
    fn update_in_place_and_reset() {
        let c = LocalCache::new(16);
        let k = key(model_id("m", 64), "x");
        c.put(&k, p(1));
        c.put(&k, p(2));
        assert_eq!(c.get(&k), Some(p(2)));
        assert_eq!(c.stats().entries, 1);
        c.reset();
        assert_eq!(c.get(&k), None);
        assert_eq!(c.stats().hits, 0);
        assert_eq!(c.stats().misses, 1);
    }

    #[test]
    fn zero_capacity_is_a_disabled_cache() {
        let c = LocalCache::new(0);
        let k = key(model_id("m", 64), "x");
        c.put(&k, p(1));
        assert_eq!(c.get(&k), None);
    }
}
