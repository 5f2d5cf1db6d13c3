//! The caches of compiled WebAssembly modules, so that the host never
//! compiles the same bytes twice: one in memory, for this run of the host
//! (a revert, a crash, `autoreload-restart`, a `touch`), and one on disk,
//! across runs (a restart of lightningd).
//!
//! Both are keyed by a [`Key`]: the SHA-256 of the module's bytes, the
//! compiler, and the engine's configuration as wasmtime hashes it
//! ([`wasmtime::Engine::precompile_compatibility_hash`], which covers the
//! wasmtime version, the target and every setting that changes the code).
//! Both are bounded in bytes and drop the least recently used entry first.
//!
//! A file on disk is loaded only if it is one this host wrote for exactly
//! this key: its header names the key, a SHA-256 of the rest matches, and
//! wasmtime recognizes the rest as a precompiled module
//! ([`wasmtime::Engine::detect_precompiled`]). Anything else (corrupt,
//! truncated, foreign, written for another engine configuration) is a
//! miss: removed, and the module compiled again. Files are written whole
//! and renamed into place, so a reader never sees half of one.
//!
//! Owns: keys, the in-memory cache, the on-disk cache's files (their
//! format, checks, writes and bound). Must not: compile, pick a compiler,
//! or fail a plugin's start: every problem here is a miss.

use super::wasm_settings::Compiler;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use wasmtime::{Engine, Module, Precompiled};

/// A SHA-256 digest.
type Digest32 = [u8; 32];

/// What a compiled module is the compilation of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// SHA-256 of the module's bytes.
    content: Digest32,
    /// The compiler that compiled it.
    compiler: Compiler,
    /// The engine's configuration ([`engine_hash`]).
    engine: Digest32,
}

impl Key {
    /// The key of `bytes` compiled by `compiler` in an engine whose
    /// [`engine_hash`] is `engine`.
    pub fn new(content: Digest32, compiler: Compiler, engine: Digest32) -> Key {
        Key {
            content,
            compiler,
            engine,
        }
    }

    /// Its file name in the on-disk cache: every part of the key, so that
    /// another engine configuration or compiler never even opens it.
    fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.cwasm",
            hex(&self.content),
            self.compiler.name(),
            &hex(&self.engine)[..16]
        )
    }

    /// Its bytes in a file's header.
    fn to_bytes(self) -> [u8; 65] {
        let mut b = [0u8; 65];
        b[..32].copy_from_slice(&self.content);
        b[32..64].copy_from_slice(&self.engine);
        b[64] = match self.compiler {
            Compiler::Winch => 1,
            Compiler::Cranelift => 2,
        };
        b
    }
}

/// SHA-256 of a module's bytes.
pub fn content_hash(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

/// The engine's configuration as one digest: wasmtime's own compatibility
/// hash, fed into SHA-256 (std's hashers are not stable across Rust
/// versions, and a disk key must be).
pub fn engine_hash(engine: &Engine) -> Digest32 {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            // Only the digest is used; finish is never called.
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(Sha256::new());
    FORMAT.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cache bounded in bytes and in entries that drops the least recently
/// used entry first.
#[derive(Debug)]
pub struct Lru<V> {
    entries: HashMap<Key, LruEntry<V>>,
    total: usize,
    clock: u64,
}

#[derive(Debug)]
struct LruEntry<V> {
    value: V,
    size: usize,
    used: u64,
}

impl<V> Default for Lru<V> {
    fn default() -> Lru<V> {
        Lru {
            entries: HashMap::new(),
            total: 0,
            clock: 0,
        }
    }
}

impl<V: Clone> Lru<V> {
    /// The value for `key`, now the most recently used.
    pub fn get(&mut self, key: &Key) -> Option<V> {
        self.clock += 1;
        let e = self.entries.get_mut(key)?;
        e.used = self.clock;
        Some(e.value.clone())
    }

    /// Keeps `value` (of `size` bytes) for `key`, dropping the least
    /// recently used entries until everything fits in `max` bytes and
    /// `max_entries` entries. A value larger than `max` is not kept, nor
    /// anything when `max_entries` is 0.
    pub fn insert(&mut self, key: Key, value: V, size: usize, max: usize, max_entries: usize) {
        if let Some(old) = self.entries.remove(&key) {
            self.total -= old.size;
        }
        if size > max || max_entries == 0 {
            return;
        }
        self.shrink_to(max - size, max_entries - 1);
        self.clock += 1;
        self.total += size;
        self.entries.insert(
            key,
            LruEntry {
                value,
                size,
                used: self.clock,
            },
        );
    }

    /// Drops the least recently used entries until at most `max` bytes
    /// are held in at most `max_entries` entries.
    fn shrink_to(&mut self, max: usize, max_entries: usize) {
        while self.total > max || self.entries.len() > max_entries {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.total -= e.size;
            }
        }
    }

    /// The bytes held.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.total
    }

    /// The number of entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The memory a module's compiled code takes (what the in-memory cache
/// keeps alive).
pub fn module_size(module: &Module) -> usize {
    let r = module.image_range();
    (r.end as usize).saturating_sub(r.start as usize)
}

/// The first bytes of every file of the on-disk cache; a new layout gets
/// a new number (and the old files are misses).
const FORMAT: &[u8; 36] = b"cln-autoreload wasm module cache v1\n";
/// Header: the format, the key, the SHA-256 of the payload.
const HEADER: usize = FORMAT.len() + 65 + 32;

/// Temporary files older than this are left over from a host that died
/// while writing one, and are removed.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// What looking a key up on disk found.
pub enum Loaded {
    /// A module this host wrote for this key.
    Hit(Module),
    /// No file for this key.
    Missing,
    /// A file that failed a check (why): removed, not used.
    Rejected(String),
}

/// The on-disk cache: a directory of files, each one module.
pub struct Disk<'a> {
    /// The directory.
    pub dir: &'a Path,
    /// The most it holds, in bytes.
    pub max: u64,
}

impl Disk<'_> {
    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The module for `key` in `engine`, if this host wrote one and it is
    /// intact. A hit is marked as recently used (its modification time).
    pub fn load(&self, key: &Key, engine: &Engine) -> Loaded {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(e) => return Loaded::Rejected(format!("cannot read {}: {e}", path.display())),
        };
        match check(&bytes, key) {
            Ok(payload) => {
                // SAFETY: `Module::deserialize` trusts that its bytes came
                // from `Module::serialize` of this wasmtime. These did: the
                // file starts with this host's header for exactly this key
                // (content, compiler and engine configuration), the SHA-256
                // the host wrote beside them matches, so they are the bytes
                // the host serialized, unchanged; and wasmtime recognizes
                // them as a precompiled module (`check`). The directory is
                // the user's own (made 0700). wasmtime checks the engine's
                // compatibility once more and refuses a mismatch.
                match unsafe { Module::deserialize(engine, payload) } {
                    Ok(m) => {
                        touch(&path);
                        Loaded::Hit(m)
                    }
                    Err(e) => self.reject(&path, format!("wasmtime refused it: {e:#}")),
                }
            }
            Err(why) => self.reject(&path, why),
        }
    }

    fn reject(&self, path: &Path, why: String) -> Loaded {
        let _ = std::fs::remove_file(path);
        Loaded::Rejected(format!("{} {why}", path.display()))
    }

    /// Writes `module` as the entry for `key` (whole, then renamed into
    /// place), then drops the least recently used entries until the
    /// directory holds at most [`Disk::max`] bytes. A module larger than
    /// the bound is not written.
    pub fn store(&self, key: &Key, module: &Module) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let payload = module
            .serialize()
            .map_err(|e| anyhow::anyhow!("cannot serialize the module: {e:#}"))?;
        let size = (HEADER + payload.len()) as u64;
        if size > self.max {
            return self.evict(None);
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(self.dir)
            .with_context(|| format!("cannot create a file in {}", self.dir.display()))?;
        let digest: Digest32 = Sha256::digest(&payload).into();
        let file = tmp.as_file_mut();
        file.write_all(FORMAT)
            .and_then(|()| file.write_all(&key.to_bytes()))
            .and_then(|()| file.write_all(&digest))
            .and_then(|()| file.write_all(&payload))
            .with_context(|| format!("cannot write {}", tmp.path().display()))?;
        let path = self.path(key);
        tmp.persist(&path)
            .with_context(|| format!("cannot rename it to {}", path.display()))?;
        self.evict(Some(&path))
    }

    /// Drops the least recently used entries (and temporary files left
    /// by a host that died writing one) until at most [`Disk::max`] bytes
    /// are held; `keep` goes last.
    fn evict(&self, keep: Option<&Path>) -> anyhow::Result<()> {
        let Ok(list) = std::fs::read_dir(self.dir) else {
            return Ok(());
        };
        let now = SystemTime::now();
        let mut files = vec![];
        let mut total = 0u64;
        for entry in list.flatten() {
            let (Ok(meta), name) = (entry.metadata(), entry.file_name()) else {
                continue;
            };
            let name = name.to_string_lossy();
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with(".tmp-") {
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                    let _ = std::fs::remove_file(entry.path());
                }
                continue;
            }
            if !meta.is_file() || !name.ends_with(".cwasm") {
                continue;
            }
            total += meta.len();
            let last = keep.is_some_and(|k| k == entry.path());
            files.push((last, modified, meta.len(), entry.path()));
        }
        files.sort();
        for (_, _, len, path) in files {
            if total <= self.max {
                break;
            }
            // Another host sharing the directory may have removed it.
            let _ = std::fs::remove_file(&path);
            total -= len;
        }
        Ok(())
    }
}

/// The payload of a cache file, if it is one this host wrote for `key`
/// and intact; why not otherwise.
fn check<'b>(bytes: &'b [u8], key: &Key) -> Result<&'b [u8], String> {
    if bytes.len() < HEADER || !bytes.starts_with(FORMAT) {
        return Err("is not a cache file of this cln-autoreload: not used".into());
    }
    let (head, payload) = bytes.split_at(HEADER);
    if head[FORMAT.len()..FORMAT.len() + 65] != key.to_bytes() {
        return Err(
            "was written for another module, compiler or engine configuration: not used".into(),
        );
    }
    let digest: Digest32 = Sha256::digest(payload).into();
    if head[FORMAT.len() + 65..] != digest {
        return Err("is corrupt (its checksum does not match): not used".into());
    }
    if Engine::detect_precompiled(payload) != Some(Precompiled::Module) {
        return Err("does not hold a precompiled module: not used".into());
    }
    Ok(payload)
}

/// Marks a cache file as just used: eviction goes by modification time.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Cranelift's incremental compilation cache, on disk: one file per
/// compiled function, named by the SHA-256 of Cranelift's key for it (the
/// function's code and everything that changes what it compiles to), so
/// that a new version of a module recompiles only the functions that
/// changed. Each file holds the SHA-256 of its value, then the value; a
/// file that does not match is a miss (Cranelift then compiles the
/// function). Bounded in bytes: past the bound, the least recently used
/// files go (by modification time, which a hit renews) until a quarter of
/// the bound is free, so that eviction does not scan the directory at
/// every insert.
///
/// One store serves the Cranelift engine for the whole run; where it keeps
/// its files is set before each compile ([`Incremental::configure`]), from
/// the settings of that compile. With no directory, it keeps nothing.
#[derive(Debug, Default)]
pub struct Incremental {
    place: Mutex<Option<Place>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Place {
    dir: PathBuf,
    max: u64,
    /// The bytes held, once counted (a scan of the directory, at the
    /// first insert).
    total: Option<u64>,
}

impl Incremental {
    /// Keeps the files in `dir`, at most `max` bytes; `None`: keep nothing.
    pub fn configure(&self, dir: Option<PathBuf>, max: u64) {
        let Ok(mut place) = self.place.lock() else {
            return;
        };
        let same = match (&*place, &dir) {
            (Some(p), Some(d)) => p.dir == *d && p.max == max,
            (None, None) => true,
            _ => false,
        };
        if !same {
            *place = dir.filter(|_| max > 0).map(|dir| Place {
                dir,
                max,
                total: None,
            });
        }
    }

    fn dir(&self) -> Option<PathBuf> {
        self.place.lock().ok()?.as_ref().map(|p| p.dir.clone())
    }

    fn file(dir: &Path, key: &[u8]) -> PathBuf {
        dir.join(hex(&Sha256::digest(key)))
    }

    /// Counts `added` bytes in; past the bound, drops the least recently
    /// used files until three quarters of it are held.
    fn account(&self, added: u64) {
        let (dir, max, over) = {
            let Ok(mut guard) = self.place.lock() else {
                return;
            };
            let Some(place) = guard.as_mut() else {
                return;
            };
            let total = match place.total {
                Some(t) => t + added,
                None => incremental_files(&place.dir).iter().map(|f| f.1).sum(),
            };
            place.total = Some(total);
            (place.dir.clone(), place.max, total > place.max)
        };
        if !over {
            return;
        }
        let mut files = incremental_files(&dir);
        files.sort_by_key(|f| f.2);
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let target = max / 4 * 3;
        for (path, len, _) in files {
            if total <= target {
                break;
            }
            let _ = std::fs::remove_file(&path);
            total = total.saturating_sub(len);
        }
        if let Ok(mut guard) = self.place.lock() {
            if let Some(place) = guard.as_mut().filter(|p| p.dir == dir) {
                place.total = Some(total);
            }
        }
    }
}

/// The files of the incremental cache in `dir`: path, size, last use.
/// Temporary files left by a host that died writing one go.
fn incremental_files(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let Ok(list) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let now = SystemTime::now();
    let mut files = vec![];
    for entry in list.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        if meta.is_file() {
            files.push((entry.path(), meta.len(), modified));
        }
    }
    files
}

impl wasmtime::CacheStore for Incremental {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        let path = Incremental::file(&self.dir()?, key);
        let mut bytes = std::fs::read(&path).ok()?;
        if bytes.len() < 32 || Sha256::digest(&bytes[32..])[..] != bytes[..32] {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        touch(&path);
        bytes.drain(..32);
        Some(std::borrow::Cow::Owned(bytes))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let Some(dir) = self.dir() else {
            return false;
        };
        let written = (|| -> std::io::Result<u64> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir)?;
            let digest: Digest32 = Sha256::digest(&value).into();
            tmp.write_all(&digest)?;
            tmp.write_all(&value)?;
            tmp.persist(Incremental::file(&dir, key))
                .map_err(|e| e.error)?;
            Ok((32 + value.len()) as u64)
        })();
        match written {
            Ok(n) => {
                self.account(n);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key::new([n; 32], Compiler::Winch, [0; 32])
    }

    #[test]
    fn the_memory_cache_drops_the_least_recently_used_first() {
        let mut c: Lru<u8> = Lru::default();
        c.insert(key(1), 1, 40, 100, 10);
        c.insert(key(2), 2, 40, 100, 10);
        assert_eq!(c.get(&key(1)), Some(1));
        // 2 is now the least recently used: it goes.
        c.insert(key(3), 3, 40, 100, 10);
        assert_eq!((c.get(&key(2)), c.len(), c.total()), (None, 2, 80));
        assert_eq!(c.get(&key(1)), Some(1));
        assert_eq!(c.get(&key(3)), Some(3));
        // Larger than the bound: not kept, and nothing is dropped for it.
        c.insert(key(4), 4, 101, 100, 10);
        assert_eq!((c.get(&key(4)), c.total()), (None, 80));
        // A smaller bound drops the oldest; a bound of 0 keeps nothing.
        c.insert(key(5), 5, 10, 50, 10);
        assert_eq!(
            (c.get(&key(1)), c.get(&key(3)), c.total()),
            (None, Some(3), 50)
        );
        c.insert(key(6), 6, 1, 0, 10);
        assert_eq!((c.get(&key(6)), c.total()), (None, 50));
    }

    #[test]
    fn the_memory_cache_holds_at_most_its_number_of_entries() {
        let mut c: Lru<u8> = Lru::default();
        for n in 1..=3 {
            c.insert(key(n), n, 1, 100, 2);
        }
        // Far under the byte bound, but 2 entries at most: 1 went first.
        assert_eq!((c.get(&key(1)), c.len(), c.total()), (None, 2, 2));
        assert_eq!(c.get(&key(2)), Some(2));
        // 3 is now the least recently used.
        c.insert(key(4), 4, 1, 100, 2);
        assert_eq!(
            (c.get(&key(3)), c.get(&key(2)), c.get(&key(4))),
            (None, Some(2), Some(4))
        );
        // A cap of 0 keeps nothing new.
        c.insert(key(5), 5, 1, 100, 0);
        assert_eq!((c.get(&key(5)), c.len()), (None, 2));
    }

    #[test]
    fn the_incremental_cache_keeps_values_and_stays_within_its_bound() {
        use wasmtime::CacheStore as _;
        let dir = tempfile::tempdir().unwrap();
        let inc = Incremental::default();
        // No directory: nothing kept.
        assert!(!inc.insert(b"k", vec![1]));
        inc.configure(Some(dir.path().join("inc")), 4 * (32 + 100));
        assert!(inc.insert(b"k0", vec![7; 100]));
        assert_eq!(inc.get(b"k0").as_deref(), Some(&[7u8; 100][..]));
        assert_eq!(inc.get(b"other"), None);
        // A value changed on disk is a miss, and removed.
        let file = Incremental::file(&dir.path().join("inc"), b"k0");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(inc.get(b"k0"), None);
        assert!(!file.exists());
        // Past the bound (4 values), the oldest go, down to three
        // quarters of it; the newest stay.
        for n in 1..=5u8 {
            assert!(inc.insert(&[n], vec![n; 100]));
            let held = incremental_files(&dir.path().join("inc"));
            assert!(held.iter().map(|f| f.1).sum::<u64>() <= 4 * (32 + 100));
        }
        assert_eq!(inc.get(&[1]), None);
        assert_eq!(inc.get(&[5]).as_deref(), Some(&[5u8; 100][..]));
    }

    #[test]
    fn a_key_differs_by_content_compiler_and_engine() {
        let k = Key::new([1; 32], Compiler::Winch, [2; 32]);
        let names = [
            k.file_name(),
            Key::new([3; 32], Compiler::Winch, [2; 32]).file_name(),
            Key::new([1; 32], Compiler::Cranelift, [2; 32]).file_name(),
            Key::new([1; 32], Compiler::Winch, [4; 32]).file_name(),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
