//! A model's `tokenizer.json` → word-piece ids, as the Hugging Face `tokenizers` crate computes
//! them, in less memory.
//!
//! Every backend holds its model's tokenizer, in both inference modes (backends tokenize; the
//! shared workers only run the network). The crate keeps a WordPiece vocabulary — every
//! BERT-family export — as two hash maps of owned strings (token → id and id → token): 7.7 MB
//! per process for MiniLM's 30,522 pieces, 16 × 7.7 MB for sixteen connections. Here the
//! vocabulary is one string of every piece, a table of `(offset, length, id)` and an
//! open-addressing index: about 1 MB for the same pieces, looked up without allocating.
//!
//! Parsing a 30,522-piece `tokenizer.json` takes tens of milliseconds — every new connection
//! paid it before its first answer. [`Tokenizer::load`] with a cache file parses the JSON once
//! per server: it writes the file with the vocabulary left out of the JSON and the compact
//! arrays after it, and later loads map that file read-only and use the arrays where they lie
//! (after checking them), then check that every added token kept its id (else they parse the
//! JSON as before). A mapped file is one copy in the page cache for every backend: a new
//! connection neither copies nor allocates the vocabulary. The file is replaced only by rename,
//! never rewritten in place (a mapping of a file cut short under it would fault).
//!
//! Only the vocabulary changes hands. The crate still parses the file and runs everything
//! around it — normalizer, pre-tokenizer, added and special tokens, post-processor, truncation —
//! and [`CompactWordPiece::tokenize`] is the crate's greedy longest-match-first WordPiece, step
//! for step (unit tests compare the two on generated and real inputs). Other models (BPE,
//! Unigram, WordLevel) keep the crate's own model.
use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::{
    DecoderWrapper, Model, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Token, TokenizerImpl,
    TruncationParams,
};

type Inner = TokenizerImpl<Vocabulary, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

/// A loaded `tokenizer.json`, truncating to a token budget, never padding.
pub struct Tokenizer {
    inner: Inner,
    path: PathBuf,
}

impl Tokenizer {
    /// Loads `path` (a Hugging Face `tokenizer.json`) and truncates every encoding to
    /// `max_length` tokens, special tokens included.
    pub fn from_file(path: &Path, max_length: usize) -> Result<Tokenizer> {
        Self::load(path, max_length, None)
    }

    /// [`Self::from_file`], through the cache file `cache` when given: read from it when it is
    /// there and sound, else parsed from `path` and written to it (best effort: a cache that
    /// cannot be written is skipped). The caller names the file after what identifies the
    /// contents of `path` (txclass: the model's checksum, which covers tokenizer.json).
    pub fn load(path: &Path, max_length: usize, cache: Option<&Path>) -> Result<Tokenizer> {
        tokenizers::utils::parallelism::set_parallelism(false);
        let cached = cache.and_then(read_cache);
        let mut inner = match cached {
            Some(inner) => inner,
            None => {
                let inner = Inner::from_file(path).map_err(|e| {
                    Error::config(
                        format!("cannot load tokenizer {}: {e}", path.display()),
                        "tokenizer.json must be a Hugging Face tokenizers file (tokenizer.save() / save_pretrained)",
                    )
                })?;
                if let Some(c) = cache {
                    write_cache(path, &inner, c);
                }
                inner
            }
        };
        inner
            .with_truncation(Some(TruncationParams { max_length, ..Default::default() }))
            .map_err(|e| Error::config(format!("tokenizer {}: {e}", path.display()), "check txclass.max_length (at least 3)"))?;
        inner.with_padding(None);
        Ok(Tokenizer { inner, path: path.to_path_buf() })
    }

    /// Token ids of `text`, with the model's special tokens when `special`, truncated.
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        self.inner
            .encode(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::runtime(format!("tokenizer {} failed: {e}", self.path.display()), None))
    }

    /// The id of `token` (added tokens first, then the vocabulary), as the crate answers it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokens known, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Whether the vocabulary is held in the compact form (a WordPiece model).
    pub fn is_compact(&self) -> bool {
        matches!(self.inner.get_model(), Vocabulary::WordPiece(_))
    }

    /// Whether the vocabulary lies in a mapped cache file (shared by every process that maps it).
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner.get_model(), Vocabulary::WordPiece(w) if w.is_mapped())
    }
}

const CACHE_MAGIC: &[u8; 8] = b"TXTOKv2\0";

/// Where [`crate::Classifier`] keeps parsed tokenizers (see [`Tokenizer::load`]); None: nowhere.
static CACHE_DIR: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Sets the directory of tokenizer cache files for this process (created if missing; None, or a
/// directory that cannot be created, turns the cache off).
pub fn set_cache_dir(dir: Option<PathBuf>) {
    let dir = dir.filter(|d| std::fs::create_dir_all(d).is_ok());
    *CACHE_DIR.lock().unwrap_or_else(|p| p.into_inner()) = dir;
}

/// The directory [`set_cache_dir`] set.
pub fn cache_dir() -> Option<PathBuf> {
    CACHE_DIR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Appends a length-prefixed run of `items` (native endianness: the file never leaves the
/// machine that wrote it).
/// Appends a run: its length (8 bytes), its items, then zeros up to a multiple of 8 bytes, so
/// that every run starts 8-aligned in the file (and in its mapping, which starts on a page).
fn put<T: Copy>(out: &mut Vec<u8>, items: &[T]) {
    out.extend_from_slice(&(items.len() as u64).to_ne_bytes());
    // SAFETY: T is a plain integer or a struct of integers (u8, u32, Entry): every byte is
    // initialised, and the slice's bytes are read, not reinterpreted as another type.
    let bytes = unsafe { std::slice::from_raw_parts(items.as_ptr() as *const u8, std::mem::size_of_val(items)) };
    out.extend_from_slice(bytes);
    out.resize(out.len().next_multiple_of(8), 0);
}

/// Where a run [`put`] wrote lies in `data`, advancing `at`: (byte offset, items). None when
/// the bytes end first or the run is not aligned for `T`.
fn take<T>(data: &[u8], at: &mut usize) -> Option<Run> {
    let n = u64::from_ne_bytes(data.get(*at..at.checked_add(8)?)?.try_into().ok()?) as usize;
    let start = *at + 8;
    let bytes = n.checked_mul(std::mem::size_of::<T>())?;
    let end = start.checked_add(bytes)?;
    if end > data.len() || (data.as_ptr() as usize + start) % std::mem::align_of::<T>() != 0 {
        return None;
    }
    *at = end.next_multiple_of(8);
    Some(Run { offset: start, len: n })
}

/// A cache file mapped read-only: shared through the page cache by every process that maps it.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and never changes while mapped (the file is replaced by
// rename, not rewritten), so sharing or moving it between threads cannot race.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: only reads.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn open(path: &Path) -> Option<Mapping> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(path).ok()?;
        let len = usize::try_from(f.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a new read-only private mapping of `len` bytes of an open file, at an address
        // the kernel picks; the descriptor may be closed afterwards (the mapping keeps the file).
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, f.as_raw_fd(), 0) };
        (ptr != libc::MAP_FAILED).then_some(Mapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: ptr maps len readable bytes for as long as self lives (unmapped in drop).
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping mmap returned, unmapped once; nothing borrows it any more (the
        // slices handed out borrow self).
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapping({} bytes)", self.len)
    }
}

/// A run of items in a mapped cache file: byte offset and item count.
#[derive(Debug, Clone, Copy)]
struct Run {
    offset: usize,
    len: usize,
}

/// Writes the cache file for the tokenizer parsed from `path`: its JSON with the WordPiece
/// vocabulary emptied, then the compact arrays; written to a temporary name and renamed, so a
/// reader never sees half a file. Only for a compact WordPiece model (others gain nothing).
fn write_cache(path: &Path, inner: &Inner, cache: &Path) {
    let Vocabulary::WordPiece(c) = inner.get_model() else { return };
    let Ok(bytes) = std::fs::read(path) else { return };
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return };
    match json.get_mut("model").and_then(|m| m.get_mut("vocab")) {
        Some(v) => *v = serde_json::Value::Object(Default::default()),
        None => return,
    }
    let Ok(json) = serde_json::to_vec(&json) else { return };
    let mut out = Vec::with_capacity(json.len() + c.heap_bytes() + 64);
    out.extend_from_slice(CACHE_MAGIC);
    put(&mut out, &json);
    put(&mut out, c.text().as_bytes());
    put(&mut out, c.entries());
    put(&mut out, c.index());
    put(&mut out, c.by_id());
    let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &out).is_ok() && std::fs::rename(&tmp, cache).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The tokenizer in the cache file, when it is there and sound: the arrays are consistent and
/// every added token has the id the original file gave it. None otherwise (the caller parses
/// tokenizer.json).
fn read_cache(cache: &Path) -> Option<Inner> {
    let map = Mapping::open(cache)?;
    let data = map.bytes();
    if data.get(..8)? != CACHE_MAGIC {
        return None;
    }
    let mut at = 8;
    let json = take::<u8>(data, &mut at)?;
    let text = take::<u8>(data, &mut at)?;
    let entries = take::<Entry>(data, &mut at)?;
    let index = take::<u32>(data, &mut at)?;
    let by_id = take::<u32>(data, &mut at)?;
    if at != data.len() {
        return None;
    }
    let arrays = Arrays::Mapped { map, text, entries, index, by_id };
    // the text must be UTF-8 once: pieces are then cut from it without checking again
    std::str::from_utf8(arrays.bytes(text)).ok()?;
    let (text_s, entries_s, index_s, by_id_s) = (arrays.text(), arrays.entries(), arrays.index(), arrays.by_id());
    let consistent = index_s.len().is_power_of_two()
        && entries_s.iter().all(|e| {
            (e.start as usize).checked_add(e.len as usize).is_some_and(|end| end <= text_s.len())
                && text_s.is_char_boundary(e.start as usize)
                && text_s.is_char_boundary((e.start + e.len) as usize)
                && (e.id as usize) < by_id_s.len()
        })
        && index_s.iter().chain(by_id_s).all(|&i| (i as usize) <= entries_s.len());
    if !consistent {
        return None;
    }
    let json = arrays.bytes(json).to_vec();
    let compact = CompactWordPiece {
        arrays,
        unk_token: String::new(),
        unk_id: None,
        prefix: String::new(),
        max_input_chars_per_word: 0,
    };
    // the JSON is parsed once: the tokenizer is built from the value, which also lists the ids
    let listed: serde_json::Value = serde_json::from_slice(&json).ok()?;
    CACHED_VOCABULARY.with(|c| *c.borrow_mut() = Some(compact));
    let parsed = Inner::deserialize(&listed);
    // never leave the arrays for another deserialization
    let unused = CACHED_VOCABULARY.with(|c| c.borrow_mut().take()).is_some();
    let inner = parsed.ok()?;
    if unused || !matches!(inner.get_model(), Vocabulary::WordPiece(_)) {
        return None;
    }
    // every added token (special tokens: [CLS], [SEP], [PAD]...) has the id the file gave it
    let ok = listed.get("added_tokens").and_then(|a| a.as_array()).is_none_or(|tokens| {
        tokens.iter().all(|t| {
            let (Some(content), Some(id)) = (t.get("content").and_then(|c| c.as_str()), t.get("id").and_then(|i| i.as_u64())) else {
                return false;
            };
            inner.token_to_id(content) == Some(id as u32)
        })
    });
    ok.then_some(inner)
}

/// The tokenizer's model: a WordPiece vocabulary in compact form, or the crate's own model.
#[derive(Debug)]
pub enum Vocabulary {
    WordPiece(CompactWordPiece),
    Other(ModelWrapper),
}

thread_local! {
    /// A compact vocabulary read from a cache file, for the WordPiece model (its vocabulary left
    /// out of the JSON) that the deserializer is about to meet: see [`Tokenizer::load`].
    static CACHED_VOCABULARY: std::cell::RefCell<Option<CompactWordPiece>> = const { std::cell::RefCell::new(None) };
}

impl<'de> Deserialize<'de> for Vocabulary {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // the crate parses (and validates) the model as it always does; a WordPiece vocabulary
        // is then copied into the compact form and the crate's maps are dropped
        Ok(match ModelWrapper::deserialize(d)? {
            // the cache's arrays (read_cache), with the settings the JSON gives
            ModelWrapper::WordPiece(wp) if wp.get_vocab_size() == 0 && CACHED_VOCABULARY.with(|c| c.borrow().is_some()) => {
                let mut c = CACHED_VOCABULARY.with(|c| c.borrow_mut().take()).expect("checked just above");
                c.unk_token = wp.unk_token.clone();
                c.prefix = wp.continuing_subword_prefix.clone();
                c.max_input_chars_per_word = wp.max_input_chars_per_word;
                c.unk_id = c.lookup("", &c.unk_token.clone());
                Vocabulary::WordPiece(c)
            }
            ModelWrapper::WordPiece(wp) => match CompactWordPiece::new(&wp) {
                Some(c) => Vocabulary::WordPiece(c),
                None => Vocabulary::Other(ModelWrapper::WordPiece(wp)),
            },
            other => Vocabulary::Other(other),
        })
    }
}

impl Model for Vocabulary {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        match self {
            Vocabulary::WordPiece(w) => w.tokenize(sequence),
            Vocabulary::Other(m) => m.tokenize(sequence),
        }
    }
    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Vocabulary::WordPiece(w) => w.lookup("", token),
            Vocabulary::Other(m) => m.token_to_id(token),
        }
    }
    fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Vocabulary::WordPiece(w) => w.piece_of(id).map(str::to_string),
            Vocabulary::Other(m) => m.id_to_token(id),
        }
    }
    fn get_vocab(&self) -> HashMap<String, u32> {
        match self {
            Vocabulary::WordPiece(w) => w.entries().iter().map(|e| (w.piece(e).to_string(), e.id)).collect(),
            Vocabulary::Other(m) => m.get_vocab(),
        }
    }
    fn get_vocab_size(&self) -> usize {
        match self {
            Vocabulary::WordPiece(w) => w.entries().len(),
            Vocabulary::Other(m) => m.get_vocab_size(),
        }
    }
    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        match self {
            Vocabulary::WordPiece(w) => w.to_wordpiece()?.save(folder, prefix),
            Vocabulary::Other(m) => m.save(folder, prefix),
        }
    }
    fn get_trainer(&self) -> TrainerWrapper {
        match self {
            Vocabulary::WordPiece(_) => TrainerWrapper::WordPieceTrainer(WordPieceTrainer::default()),
            Vocabulary::Other(m) => m.get_trainer(),
        }
    }
}

/// One piece: `text[start..start + len]` has id `id`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    start: u32,
    len: u32,
    id: u32,
}

/// The arrays of a [`CompactWordPiece`]: built in this process, or lying in a mapped cache file.
#[derive(Debug)]
enum Arrays {
    Owned {
        /// Every piece, concatenated.
        text: String,
        entries: Vec<Entry>,
        /// Open addressing, linear probing: entry index + 1, 0 = empty; a power of two ≥ 2 ×
        /// entries.
        index: Vec<u32>,
        /// id → entry index + 1 (0: no piece has that id).
        by_id: Vec<u32>,
    },
    /// The same four, as runs of the file (checked by `read_cache` before use: aligned, inside
    /// the mapping, the text UTF-8).
    Mapped { map: Mapping, text: Run, entries: Run, index: Run, by_id: Run },
}

impl Arrays {
    fn bytes(&self, r: Run) -> &[u8] {
        match self {
            Arrays::Mapped { map, .. } => &map.bytes()[r.offset..r.offset + r.len],
            Arrays::Owned { .. } => &[],
        }
    }

    fn slice<T>(&self, r: Run) -> &[T] {
        let Arrays::Mapped { map, .. } = self else { return &[] };
        // SAFETY: `take` checked that the run's len items of T lie inside the mapping and start
        // aligned for T; T is u32 or Entry (integers only: every bit pattern is valid); the
        // mapping lives as long as self and never changes.
        unsafe { std::slice::from_raw_parts(map.bytes().as_ptr().add(r.offset) as *const T, r.len) }
    }

    fn text(&self) -> &str {
        match self {
            Arrays::Owned { text, .. } => text,
            // SAFETY: read_cache checked the run is UTF-8 before building these arrays.
            Arrays::Mapped { text, .. } => unsafe { std::str::from_utf8_unchecked(self.bytes(*text)) },
        }
    }

    fn entries(&self) -> &[Entry] {
        match self {
            Arrays::Owned { entries, .. } => entries,
            Arrays::Mapped { entries, .. } => self.slice(*entries),
        }
    }

    fn index(&self) -> &[u32] {
        match self {
            Arrays::Owned { index, .. } => index,
            Arrays::Mapped { index, .. } => self.slice(*index),
        }
    }

    fn by_id(&self) -> &[u32] {
        match self {
            Arrays::Owned { by_id, .. } => by_id,
            Arrays::Mapped { by_id, .. } => self.slice(*by_id),
        }
    }
}

/// A WordPiece vocabulary in three flat arrays, and the crate's WordPiece algorithm over it.
#[derive(Debug)]
pub struct CompactWordPiece {
    arrays: Arrays,
    unk_token: String,
    unk_id: Option<u32>,
    prefix: String,
    max_input_chars_per_word: usize,
}

/// FNV-1a over the bytes of `a` then `b` (a piece is looked up as prefix + part without
/// building the string).
fn hash(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in a.iter().chain(b) {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl CompactWordPiece {
    /// The same vocabulary and settings as `wp`, in compact form; None for a vocabulary the
    /// arrays do not suit (ids far sparser than the pieces, whose id → piece array would be
    /// larger than the maps, or over 4 GB of text), which keeps the crate's maps.
    pub fn new(wp: &WordPiece) -> Option<CompactWordPiece> {
        let mut vocab: Vec<(String, u32)> = wp.get_vocab().into_iter().collect();
        let max_id = vocab.iter().map(|(_, id)| *id as usize).max().unwrap_or(0);
        let text_len: usize = vocab.iter().map(|(t, _)| t.len()).sum();
        if max_id > 4 * vocab.len() + 1024 || text_len >= u32::MAX as usize {
            return None;
        }
        // deterministic layout (the map's order is not)
        vocab.sort_unstable_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let mut text = String::with_capacity(text_len);
        let mut entries = Vec::with_capacity(vocab.len());
        for (t, id) in &vocab {
            entries.push(Entry { start: text.len() as u32, len: t.len() as u32, id: *id });
            text.push_str(t);
        }
        let size = (entries.len() * 2).next_power_of_two().max(16);
        let mut index = vec![0u32; size];
        let mask = size - 1;
        let mut by_id = vec![0u32; if entries.is_empty() { 0 } else { max_id + 1 }];
        for (i, e) in entries.iter().enumerate() {
            let piece = &text.as_bytes()[e.start as usize..(e.start + e.len) as usize];
            let mut s = hash(piece, &[]) as usize & mask;
            while index[s] != 0 {
                s = (s + 1) & mask;
            }
            index[s] = i as u32 + 1;
            // several pieces with one id: the crate's id → token map keeps one of them, too
            by_id[e.id as usize] = i as u32 + 1;
        }
        let mut c = CompactWordPiece {
            arrays: Arrays::Owned { text, entries, index, by_id },
            unk_token: wp.unk_token.clone(),
            unk_id: None,
            prefix: wp.continuing_subword_prefix.clone(),
            max_input_chars_per_word: wp.max_input_chars_per_word,
        };
        c.unk_id = c.lookup("", &c.unk_token.clone());
        Some(c)
    }

    fn text(&self) -> &str {
        self.arrays.text()
    }
    fn entries(&self) -> &[Entry] {
        self.arrays.entries()
    }
    fn index(&self) -> &[u32] {
        self.arrays.index()
    }
    fn by_id(&self) -> &[u32] {
        self.arrays.by_id()
    }

    fn piece(&self, e: &Entry) -> &str {
        &self.text()[e.start as usize..(e.start + e.len) as usize]
    }

    /// The piece with id `id`.
    pub fn piece_of(&self, id: u32) -> Option<&str> {
        match *self.by_id().get(id as usize)? {
            0 => None,
            i => Some(self.piece(&self.entries()[i as usize - 1])),
        }
    }

    /// Whether the arrays lie in a mapped cache file (shared) rather than in this process.
    pub fn is_mapped(&self) -> bool {
        matches!(self.arrays, Arrays::Mapped { .. })
    }

    /// The id of the piece `prefix` + `part`.
    pub fn lookup(&self, prefix: &str, part: &str) -> Option<u32> {
        let (p, q) = (prefix.as_bytes(), part.as_bytes());
        let (index, entries) = (self.index(), self.entries());
        let mask = index.len() - 1;
        let mut s = hash(p, q) as usize & mask;
        loop {
            let e = match index[s] {
                0 => return None,
                i => &entries[i as usize - 1],
            };
            let piece = self.piece(e).as_bytes();
            if piece.len() == p.len() + q.len() && piece.starts_with(p) && &piece[p.len()..] == q {
                return Some(e.id);
            }
            s = (s + 1) & mask;
        }
    }

    fn unknown(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        let id = self.unk_id.ok_or(tokenizers::models::wordpiece::Error::MissingUnkToken)?;
        Ok(vec![Token { value: self.unk_token.clone(), id, offsets: (0, sequence.len()) }])
    }

    /// Greedy longest-match-first, exactly as `tokenizers::models::wordpiece::WordPiece`: a
    /// word longer than `max_input_chars_per_word` characters, or one with a part no piece
    /// matches, is the unknown token as a whole.
    pub fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        if sequence.chars().count() > self.max_input_chars_per_word {
            return self.unknown(sequence);
        }
        let mut tokens = Vec::new();
        let mut start = 0;
        while start < sequence.len() {
            let mut end = sequence.len();
            let mut found = None;
            while start < end {
                let part = &sequence[start..end];
                let prefix = if start > 0 { self.prefix.as_str() } else { "" };
                if let Some(id) = self.lookup(prefix, part) {
                    found = Some(Token { id, value: format!("{prefix}{part}"), offsets: (start, end) });
                    break;
                }
                end -= part.chars().last().map_or(1, char::len_utf8);
            }
            match found {
                Some(t) => {
                    tokens.push(t);
                    start = end;
                }
                None => return self.unknown(sequence),
            }
        }
        Ok(tokens)
    }

    /// Back to the crate's model (for `save`).
    fn to_wordpiece(&self) -> tokenizers::Result<WordPiece> {
        let vocab: serde_json::Map<String, serde_json::Value> =
            self.entries().iter().map(|e| (self.piece(e).to_string(), e.id.into())).collect();
        Ok(serde_json::from_value(serde_json::json!({
            "type": "WordPiece",
            "vocab": vocab,
            "unk_token": self.unk_token,
            "continuing_subword_prefix": self.prefix,
            "max_input_chars_per_word": self.max_input_chars_per_word,
        }))?)
    }

    /// Heap bytes held (a mapped cache file's arrays are not on this process's heap).
    pub fn heap_bytes(&self) -> usize {
        let arrays = match &self.arrays {
            Arrays::Owned { text, entries, index, by_id } => {
                text.capacity() + entries.capacity() * std::mem::size_of::<Entry>() + (index.capacity() + by_id.capacity()) * 4
            }
            Arrays::Mapped { .. } => 0,
        };
        arrays + self.unk_token.capacity() + self.prefix.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SplitMix;

    fn bundled(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name).join("tokenizer.json")
    }

    /// The crate's own tokenizer, configured as [`Tokenizer::from_file`] configures ours.
    fn reference(path: &Path, max_length: usize) -> tokenizers::Tokenizer {
        let mut t = tokenizers::Tokenizer::from_file(path).unwrap();
        t.with_truncation(Some(TruncationParams { max_length, ..Default::default() })).unwrap();
        t.with_padding(None);
        t
    }

    /// Inputs that reach every branch of WordPiece: pieces of the vocabulary glued into words
    /// (continuation matches), random letters (unknown words), digits and punctuation (the
    /// pre-tokenizer's splits), accents, CJK, emoji, control characters, over-long words.
    fn inputs(vocab: &[String], n: usize, seed: u64) -> Vec<String> {
        let mut r = SplitMix::new(seed);
        let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 *#-./&'".chars().collect();
        let odd = ["é", "Ö", "ß", "ﬁ", "中", "文", "😀", "\u{301}", "\t", "\u{0}", "\u{200b}", "İ", "Σ", "£", "€"];
        (0..n)
            .map(|_| {
                let mut s = String::new();
                for _ in 0..1 + r.below(6) {
                    match r.below(6) {
                        0 | 1 => {
                            // a word made of vocabulary pieces
                            for k in 0..1 + r.below(4) {
                                let p = &vocab[r.below(vocab.len())];
                                s.push_str(if k > 0 { p.trim_start_matches("##") } else { p });
                            }
                        }
                        2 => (0..1 + r.below(12)).for_each(|_| s.push(alphabet[r.below(alphabet.len())])),
                        3 => s.push_str(odd[r.below(odd.len())]),
                        4 => (0..95 + r.below(20)).for_each(|_| s.push(alphabet[r.below(26)])),
                        _ => s.push_str(&r.below(100_000).to_string()),
                    }
                    if r.below(3) > 0 {
                        s.push(' ');
                    }
                }
                s
            })
            .collect()
    }

    fn assert_same(path: &Path, texts: &[String], max_length: usize) {
        let ours = Tokenizer::from_file(path, max_length).unwrap();
        let theirs = reference(path, max_length);
        assert_eq!(ours.vocab_size(), theirs.get_vocab_size(true), "{}", path.display());
        for t in texts {
            for special in [true, false] {
                let want = theirs.encode(t.as_str(), special).unwrap().get_ids().to_vec();
                assert_eq!(ours.encode(t, special).unwrap(), want, "{t:?} (special tokens: {special}) with {}", path.display());
            }
        }
    }

    fn vocab_of(path: &Path) -> Vec<String> {
        let mut v: Vec<String> = reference(path, 512).get_vocab(false).into_keys().collect();
        v.sort();
        v
    }

    #[test]
    fn bundled_tokenizers_give_the_crates_ids() {
        for name in ["txclass-merchants-v1", "txclass-merchants-v2", "txclass-merchants-v3"] {
            let path = bundled(name);
            let t = Tokenizer::from_file(&path, 32).unwrap();
            assert!(t.is_compact(), "{name} is a WordPiece tokenizer");
            for (k, max_length) in [(1u64, 32usize), (2, 8), (3, 512)] {
                assert_same(&path, &inputs(&vocab_of(&path), 400, k), max_length);
            }
            for s in ["", " ", "SQ *BLUE BOTTLE COF 8473 OAKLAND CA", "[CLS] tesco [SEP] [MASK]", "##ing", "amazon.co.uk*mk1234"] {
                assert_same(&path, &[s.to_string()], 32);
            }
        }
    }

    /// Other tokenizers named in `TXCLASS_TEST_TOKENIZERS` (paths separated by `:`), e.g. the
    /// MiniLM export of bench/minilm.sh: `TXCLASS_TEST_TOKENIZERS=build/models/minilm-l6-fp32/tokenizer.json`.
    #[test]
    fn named_tokenizers_give_the_crates_ids() {
        let Ok(paths) = std::env::var("TXCLASS_TEST_TOKENIZERS") else { return };
        for p in paths.split(':').filter(|p| !p.is_empty()) {
            let path = std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            for (k, max_length) in [(4u64, 64usize), (5, 8)] {
                assert_same(&path, &inputs(&vocab_of(&path), 2000, k), max_length);
            }
            if let Some(texts) = oxford() {
                assert_same(&path, &texts, 64);
            }
            eprintln!("{}: same ids as the tokenizers crate", path.display());
        }
    }

    /// The merchant names of the Oxford card file beside the repository (present in development
    /// and CI clones), raw and normalized.
    fn oxford() -> Option<Vec<String>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/oxford-pcard");
        let files = std::fs::read_dir(&dir).ok()?;
        let mut texts = Vec::new();
        for f in files.flatten().filter(|f| f.path().extension().is_some_and(|e| e == "csv")) {
            let raw = String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned();
            // date, merchant name, amount: the merchant is the descriptor
            texts.extend(raw.lines().skip(1).filter_map(|l| l.split(',').nth(1)).map(|c| c.trim_matches('"').to_string()));
        }
        texts.sort();
        texts.dedup();
        let normalized: Vec<String> = texts.iter().map(|t| crate::normalize(t)).collect();
        texts.extend(normalized);
        Some(texts)
    }

    #[test]
    fn real_descriptors_give_the_crates_ids() {
        let Some(texts) = oxford() else {
            eprintln!("../shared/data/oxford-pcard not here: real descriptors not compared");
            return;
        };
        assert!(texts.len() > 2000, "{} distinct fields", texts.len());
        assert_same(&bundled("txclass-merchants-v3"), &texts, 32);
    }

    fn write(name: &str, json: &serde_json::Value) -> PathBuf {
        let d = std::env::temp_dir().join(format!("txclass-tok-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("tokenizer.json");
        std::fs::write(&p, serde_json::to_vec(json).unwrap()).unwrap();
        p
    }

    fn wordpiece_json(vocab: serde_json::Value, unk: &str, prefix: &str, max_chars: usize) -> serde_json::Value {
        serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": 0, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                             {"id": 7, "content": "[ADDED]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordPiece", "unk_token": unk, "continuing_subword_prefix": prefix, "max_input_chars_per_word": max_chars, "vocab": vocab}
        })
    }

    #[test]
    fn unusual_wordpiece_settings_give_the_crates_ids() {
        // another continuation prefix, a short word limit, ids with gaps and one id twice, an
        // added token outside the vocabulary (it takes the next free id)
        let vocab = serde_json::json!({"[UNK]": 0, "tes": 3, "tesco": 4, "@@co": 5, "@@c": 9, "@@o": 10, "a": 11,
                                       "@@a": 12, "b": 12, "é": 20, "@@é": 21, "中": 30, "1": 40, "@@1": 41, "*": 42});
        let p = write("odd", &wordpiece_json(vocab, "[UNK]", "@@", 6));
        let t = Tokenizer::from_file(&p, 64).unwrap();
        assert!(t.is_compact());
        let texts: Vec<String> = ["tesco", "TESCO tesc tesco1 tescoo", "ab ba aaaa a1111 1a", "éé éa 中中 中a", "tescoaa", "aaaaaaa",
                                  "x", "[ADDED] tes[ADDED]co", "*tesco*", "tesco tesco tesco tesco tesco tesco tesco tesco"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_same(&p, &texts, 64);
        assert_same(&p, &texts, 4);
        assert_same(&p, &inputs(&["tes".into(), "@@co".into(), "a".into(), "1".into(), "é".into()], 500, 9), 16);
        assert_eq!(t.token_to_id("tesco"), Some(4));
        assert_eq!(t.token_to_id("@@co"), Some(5));
        assert_eq!(t.token_to_id("nope"), None);
        assert_eq!(t.token_to_id("[ADDED]"), reference(&p, 64).token_to_id("[ADDED]"));
        assert_eq!(t.encode("tesco1 zz", false).unwrap(), vec![4, 41, 0]);
    }

    #[test]
    fn a_missing_unknown_token_fails_as_the_crate_does() {
        let vocab = serde_json::json!({"a": 0, "##b": 1});
        let p = write("nounk", &wordpiece_json(vocab, "[NOPE]", "##", 100));
        let t = Tokenizer::from_file(&p, 16).unwrap();
        assert_eq!(t.encode("ab", false).unwrap(), vec![0, 1]);
        let ours = t.encode("zzz", false).unwrap_err();
        let theirs = reference(&p, 16).encode("zzz", false).unwrap_err();
        assert!(ours.message.contains(&theirs.to_string()), "{} / {theirs}", ours.message);
        assert!(ours.message.contains("tokenizer.json"), "{}", ours.message);
    }

    #[test]
    fn sparse_ids_keep_the_crates_maps() {
        // an id → piece array for ids up to four billion would not fit: the crate's maps stay
        let vocab = serde_json::json!({"[UNK]": 0, "tesco": 4_000_000_000u32, "##s": 7});
        let p = write("sparse", &wordpiece_json(vocab, "[UNK]", "##", 100));
        let t = Tokenizer::from_file(&p, 16).unwrap();
        assert!(!t.is_compact());
        assert_eq!(t.encode("tescos zz", false).unwrap(), vec![4_000_000_000, 7, 0]);
    }

    #[test]
    fn other_models_keep_the_crates_model() {
        let p = write(
            "wordlevel",
            &serde_json::json!({
                "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
                "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
                "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "tesco": 1, "store": 2}, "unk_token": "[UNK]"}
            }),
        );
        let t = Tokenizer::from_file(&p, 16).unwrap();
        assert!(!t.is_compact());
        assert_eq!(t.encode("TESCO Store x", false).unwrap(), vec![1, 2, 0]);
        assert_same(&p, &["tesco store".into(), "a b c".into()], 16);
    }

    #[test]
    fn the_compact_vocabulary_is_a_fraction_of_the_crates() {
        let path = bundled("txclass-merchants-v3");
        let t = Tokenizer::from_file(&path, 32).unwrap();
        let Vocabulary::WordPiece(w) = t.inner.get_model() else { panic!("WordPiece expected") };
        let n = w.entries().len();
        assert_eq!(n, reference(&path, 32).get_vocab_size(false));
        // the crate: two maps of owned strings, at least a 24-byte String and a 4-byte id per
        // piece in each, before hashing overhead and the strings' own allocations
        let crate_floor = 2 * n * (24 + 4);
        assert!(w.heap_bytes() < crate_floor, "{} bytes for {n} pieces (crate: over {crate_floor})", w.heap_bytes());
        for id in [0u32, 1, 100, (n - 1) as u32] {
            let piece = w.piece_of(id).unwrap();
            assert_eq!(w.lookup("", piece), Some(id));
            assert_eq!(t.inner.get_model().id_to_token(id).as_deref(), Some(piece));
        }
        assert_eq!(t.inner.get_model().get_vocab(), reference(&path, 32).get_model().get_vocab());
    }

    /// Tokenizers loaded through a cache file give the crate's ids, whether the file was just
    /// written or read back; a second load reads it (the JSON is not parsed again).
    #[test]
    fn cached_tokenizers_give_the_crates_ids() {
        let dir = std::env::temp_dir().join(format!("txclass-tokcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["txclass-merchants-v1", "txclass-merchants-v2", "txclass-merchants-v3"] {
            let path = bundled(name);
            let cache = dir.join(format!("{name}.tokenizer"));
            let _ = std::fs::remove_file(&cache);
            let written = Tokenizer::load(&path, 32, Some(&cache)).unwrap();
            assert!(cache.exists(), "{name}: the cache file is written");
            assert!(read_cache(&cache).is_some(), "{name}: the cache file reads back");
            let read = Tokenizer::load(&path, 32, Some(&cache)).unwrap();
            assert!(read.is_mapped() && !written.is_mapped(), "{name}: a cache file that reads back is mapped, not copied");
            assert!(read.is_compact());
            let theirs = reference(&path, 32);
            assert_eq!(read.vocab_size(), theirs.get_vocab_size(true));
            let mut texts = inputs(&vocab_of(&path), 400, 7);
            texts.extend(["", "[CLS] tesco [SEP] [MASK]", "##ing", "SQ *BLUE BOTTLE COF 8473 OAKLAND CA"].map(String::from));
            for t in &texts {
                for special in [true, false] {
                    let want = theirs.encode(t.as_str(), special).unwrap().get_ids().to_vec();
                    assert_eq!(read.encode(t, special).unwrap(), want, "{t:?} from the cache of {name}");
                    assert_eq!(written.encode(t, special).unwrap(), want, "{t:?} while writing the cache of {name}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A damaged cache file (cut short, bytes changed, another format, an added token whose id
    /// moved) is not used: the tokenizer is parsed from tokenizer.json, with the crate's ids.
    #[test]
    fn a_damaged_cache_file_is_not_used() {
        let dir = std::env::temp_dir().join(format!("txclass-tokcache-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = bundled("txclass-merchants-v3");
        let cache = dir.join("v3.tokenizer");
        Tokenizer::load(&path, 32, Some(&cache)).unwrap();
        let good = std::fs::read(&cache).unwrap();
        let theirs = reference(&path, 32);
        let texts = inputs(&vocab_of(&path), 200, 11);
        let mut moved = good.clone();
        // the JSON's first added token claims another id ("id":0 -> "id":9 keeps the length)
        let json_at = 16;
        let pos = moved[json_at..].windows(6).position(|w| w == b"\"id\":0").map(|p| p + json_at + 5);
        let damaged: Vec<(&str, Vec<u8>)> = vec![
            ("cut short", good[..good.len() / 2].to_vec()),
            ("another format", [b"TXTOKv0\0".as_slice(), &good[8..]].concat()),
            ("a length out of range", {
                let mut b = good.clone();
                b[8..16].copy_from_slice(&u64::MAX.to_ne_bytes());
                b
            }),
            ("an added token's id moved", {
                if let Some(p) = pos {
                    moved[p] = b'9';
                }
                moved.clone()
            }),
        ];
        assert!(pos.is_some(), "the v3 tokenizer lists an added token with id 0");
        for (what, bytes) in damaged {
            std::fs::write(&cache, &bytes).unwrap();
            assert!(read_cache(&cache).is_none(), "{what}: not used");
            let t = Tokenizer::load(&path, 32, Some(&cache)).unwrap();
            for x in &texts {
                let want = theirs.encode(x.as_str(), true).unwrap().get_ids().to_vec();
                assert_eq!(t.encode(x, true).unwrap(), want, "{x:?} after a cache file {what}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
