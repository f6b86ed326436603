//! A simulated disk for crash-consistency and fault tests.
//!
//! Every file keeps its "live" bytes (what reads see) apart from its
//! "durable" bytes (what survives a crash), plus the list of operations
//! issued since its last fdatasync. Names in a directory become durable only
//! with a directory sync. [`SimDisk::crash`] rebuilds every file from its
//! durable bytes and replays each unsynced operation at random: kept, lost,
//! or (for writes) torn at a random byte; all driven by a seed, so a failure
//! replays exactly. Faults (failing writes or syncs) are injected on demand.
//! Directories themselves are always durable.

use super::{IoBuf, Storage, StorageFile};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::constants::ALIGN;

/// A small deterministic generator (SplitMix64): tests need reproducible
/// randomness, not quality.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileData {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Op>,
}

fn apply(bytes: &mut Vec<u8>, op: &Op, cut: Option<usize>) {
    match op {
        Op::Write { pos, data } => {
            let data = &data[..cut.unwrap_or(data.len()).min(data.len())];
            let pos = *pos as usize;
            if bytes.len() < pos + data.len() {
                bytes.resize(pos + data.len(), 0);
            }
            bytes[pos..pos + data.len()].copy_from_slice(data);
        }
        Op::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

type FileRef = Rc<RefCell<FileData>>;

#[derive(Debug, Default)]
struct DiskState {
    live: BTreeMap<PathBuf, FileRef>,
    durable: BTreeMap<PathBuf, FileRef>,
    writes_until_failure: Option<u64>,
    syncs_until_failure: Option<u64>,
    ops: u64,
    /// Bumped by every crash: handles from before it fail like a lost device.
    generation: u64,
    /// Drives how long each operation takes (in executor turns), so that
    /// concurrent operations complete in varying orders.
    delays: Option<SimRng>,
    /// Writes wait while set (a device that has stopped taking writes).
    writes_stalled: bool,
}

/// The simulated device, shared by every [`SimStorage`] made from it.
#[derive(Debug, Default)]
pub struct SimDisk {
    state: RefCell<DiskState>,
}

impl SimDisk {
    pub fn new() -> Rc<SimDisk> {
        Rc::new(SimDisk::default())
    }

    /// A disk whose operations take a random number of executor turns
    /// (seeded), so that concurrent writes complete out of issue order.
    pub fn with_delays(seed: u64) -> Rc<SimDisk> {
        let disk = SimDisk::default();
        disk.state.borrow_mut().delays = Some(SimRng::new(seed));
        Rc::new(disk)
    }

    async fn delay(&self) {
        let turns = self
            .state
            .borrow_mut()
            .delays
            .as_mut()
            .map_or(1, |r| r.below(4));
        for _ in 0..turns {
            futures_lite::future::yield_now().await;
        }
    }

    /// A storage on this disk; it fails every operation after the next crash.
    pub fn storage(self: &Rc<Self>) -> SimStorage {
        SimStorage {
            disk: self.clone(),
            generation: self.state.borrow().generation,
        }
    }

    fn alive(&self, generation: u64) -> io::Result<()> {
        if self.state.borrow().generation == generation {
            Ok(())
        } else {
            Err(io::Error::other("device lost (simulated crash)"))
        }
    }

    /// Loses everything not synced; each unsynced operation is kept, lost
    /// or torn at random.
    pub fn crash(&self, rng: &mut SimRng) {
        let mut st = self.state.borrow_mut();
        st.generation += 1;
        st.live = st.durable.clone();
        let mut seen: Vec<*const RefCell<FileData>> = Vec::new();
        for f in st.durable.values() {
            if seen.contains(&Rc::as_ptr(f)) {
                continue;
            }
            seen.push(Rc::as_ptr(f));
            let mut f = f.borrow_mut();
            let mut bytes = f.durable.clone();
            for op in std::mem::take(&mut f.pending) {
                match rng.below(3) {
                    0 => {}
                    1 => {
                        let cut = match &op {
                            Op::Write { data, .. } => {
                                Some(rng.below(data.len() as u64 + 1) as usize)
                            }
                            Op::SetLen(_) => None,
                        };
                        apply(&mut bytes, &op, cut);
                    }
                    _ => apply(&mut bytes, &op, None),
                }
            }
            f.live = bytes.clone();
            f.durable = bytes;
        }
        st.writes_until_failure = None;
        st.syncs_until_failure = None;
    }

    /// The next `n` writes succeed, every later one fails with EIO.
    pub fn fail_writes_after(&self, n: u64) {
        self.state.borrow_mut().writes_until_failure = Some(n);
    }

    /// The next `n` fdatasyncs succeed, every later one fails with EIO.
    pub fn fail_syncs_after(&self, n: u64) {
        self.state.borrow_mut().syncs_until_failure = Some(n);
    }

    /// Writes issued from now on wait, without completing, until
    /// [`SimDisk::resume_writes`].
    pub fn stall_writes(&self) {
        self.state.borrow_mut().writes_stalled = true;
    }

    pub fn resume_writes(&self) {
        self.state.borrow_mut().writes_stalled = false;
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        let mut st = self.state.borrow_mut();
        st.writes_until_failure = None;
        st.syncs_until_failure = None;
    }

    /// Live bytes of a file.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.state
            .borrow()
            .live
            .get(path)
            .map(|f| f.borrow().live.clone())
    }

    /// Overwrites a file's bytes, live and durable (corruption tests).
    pub fn write_file_durable(&self, path: &Path, bytes: Vec<u8>) {
        let mut st = self.state.borrow_mut();
        let f = st.live.entry(path.to_path_buf()).or_default().clone();
        st.durable.insert(path.to_path_buf(), f.clone());
        let mut f = f.borrow_mut();
        f.live = bytes.clone();
        f.durable = bytes;
        f.pending.clear();
    }

    /// Names of live files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.state.borrow().live.keys().cloned().collect()
    }

    /// Operations issued so far (writes, syncs, truncates).
    pub fn op_count(&self) -> u64 {
        self.state.borrow().ops
    }

    fn count_write(&self) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.ops += 1;
        match st.writes_until_failure {
            Some(0) => Err(io::Error::other("simulated write failure (EIO)")),
            Some(n) => {
                st.writes_until_failure = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn count_sync(&self) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.ops += 1;
        match st.syncs_until_failure {
            Some(0) => Err(io::Error::other("simulated fdatasync failure (EIO)")),
            Some(n) => {
                st.syncs_until_failure = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// A [`Storage`] over a [`SimDisk`].
#[derive(Debug, Clone)]
pub struct SimStorage {
    disk: Rc<SimDisk>,
    generation: u64,
}

/// An aligned-length buffer for the simulated disk.
#[derive(Debug)]
pub struct SimBuf(Vec<u8>);

impl IoBuf for SimBuf {
    fn as_slice(&self) -> &[u8] {
        &self.0
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn trim(&mut self, len: usize) {
        self.0.truncate(len)
    }
}

/// An open file on the simulated disk.
pub struct SimFile {
    data: FileRef,
    disk: Rc<SimDisk>,
    generation: u64,
}

fn einval(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what} (EINVAL)"))
}

impl StorageFile for SimFile {
    type Buf = SimBuf;
    type ReadBuf = Vec<u8>;

    async fn write_at(&self, buf: Rc<SimBuf>, pos: u64) -> io::Result<usize> {
        self.disk.delay().await;
        while self.disk.state.borrow().writes_stalled {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.disk.alive(self.generation)?;
        let len = buf.0.len() as u64;
        if pos % ALIGN != 0 || len % ALIGN != 0 {
            return Err(einval("unaligned direct write"));
        }
        self.disk.count_write()?;
        let op = Op::Write {
            pos,
            data: buf.0.clone(),
        };
        let mut f = self.data.borrow_mut();
        apply(&mut f.live, &op, None);
        f.pending.push(op);
        Ok(len as usize)
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        self.disk.delay().await;
        self.disk.alive(self.generation)?;
        let f = self.data.borrow();
        let start = (pos as usize).min(f.live.len());
        let end = (start + len).min(f.live.len());
        Ok(f.live[start..end].to_vec())
    }
    async fn fdatasync(&self) -> io::Result<()> {
        self.disk.delay().await;
        self.disk.alive(self.generation)?;
        self.disk.count_sync()?;
        let mut f = self.data.borrow_mut();
        f.durable = f.live.clone();
        f.pending.clear();
        Ok(())
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.disk.delay().await;
        self.disk.alive(self.generation)?;
        self.disk.count_write()?;
        let mut f = self.data.borrow_mut();
        let op = Op::SetLen(len);
        apply(&mut f.live, &op, None);
        f.pending.push(op);
        Ok(())
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.disk.delay().await;
        self.disk.alive(self.generation)?;
        let mut f = self.data.borrow_mut();
        if (f.live.len() as u64) < len {
            let op = Op::SetLen(len);
            apply(&mut f.live, &op, None);
            f.pending.push(op);
        }
        Ok(())
    }
    async fn size(&self) -> io::Result<u64> {
        self.disk.alive(self.generation)?;
        Ok(self.data.borrow().live.len() as u64)
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Storage for SimStorage {
    type Buf = SimBuf;
    type File = SimFile;

    fn alloc_buf(&self, len: usize) -> SimBuf {
        // Garbage, not zeros, like real allocations: padding must be written
        // on purpose.
        SimBuf(vec![0xA5; len])
    }
    async fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        self.disk.delay().await;
        self.disk.alive(self.generation)?;
        let mut st = self.disk.state.borrow_mut();
        let data = match st.live.get(path) {
            Some(f) => f.clone(),
            None if create => {
                let f: FileRef = Rc::default();
                st.live.insert(path.to_path_buf(), f.clone());
                f
            }
            None => return Err(not_found(path)),
        };
        Ok(SimFile {
            data,
            disk: self.disk.clone(),
            generation: self.generation,
        })
    }
    async fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.disk.alive(self.generation)?;
        let mut st = self.disk.state.borrow_mut();
        st.live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.alive(self.generation)?;
        let mut st = self.disk.state.borrow_mut();
        st.live.retain(|p, _| !p.starts_with(path));
        st.durable.retain(|p, _| !p.starts_with(path));
        Ok(())
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.alive(self.generation)?;
        let mut st = self.disk.state.borrow_mut();
        let f = st.live.remove(from).ok_or_else(|| not_found(from))?;
        st.live.insert(to.to_path_buf(), f);
        Ok(())
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.disk.alive(self.generation)?;
        let st = self.disk.state.borrow();
        Ok(st
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.disk.delay().await;
        self.disk.alive(self.generation)?;
        self.disk.count_sync()?;
        let mut st = self.disk.state.borrow_mut();
        st.durable.retain(|p, _| p.parent() != Some(dir));
        let entries: Vec<_> = st
            .live
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect();
        st.durable.extend(entries);
        Ok(())
    }
    fn reader(&self, _path: &Path) -> io::Result<Option<Arc<std::fs::File>>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn crash_keeps_synced_bytes_and_drops_unsynced_names() {
        block_on(async {
            let disk = SimDisk::new();
            let s = disk.storage();
            let dir = Path::new("/d");
            let a = s.open(&dir.join("a"), true).await.unwrap();
            let mut buf = s.alloc_buf(4096);
            buf.as_mut_slice().fill(1);
            a.write_at(Rc::new(buf), 0).await.unwrap();
            a.fdatasync().await.unwrap();
            s.sync_dir(dir).await.unwrap();
            let b = s.open(&dir.join("b"), true).await.unwrap();
            b.write_at(Rc::new(s.alloc_buf(4096)), 0).await.unwrap();
            b.fdatasync().await.unwrap();
            let mut buf = s.alloc_buf(4096);
            buf.as_mut_slice().fill(2);
            a.write_at(Rc::new(buf), 4096).await.unwrap();
            disk.crash(&mut SimRng::new(1));
            let a = disk.read_file(&dir.join("a")).unwrap();
            assert!(a.len() >= 4096 && a[..4096].iter().all(|b| *b == 1));
            assert!(a[4096..].iter().all(|b| *b == 2));
            assert!(
                disk.read_file(&dir.join("b")).is_none(),
                "unsynced name survived"
            );
        });
    }

    #[test]
    fn unaligned_writes_fail_and_faults_fire() {
        block_on(async {
            let disk = SimDisk::new();
            let s = disk.storage();
            let f = s.open(Path::new("/x"), true).await.unwrap();
            assert!(f.write_at(Rc::new(SimBuf(vec![0; 100])), 0).await.is_err());
            disk.fail_syncs_after(0);
            assert!(f.fdatasync().await.is_err());
            disk.heal();
            f.fdatasync().await.unwrap();
        });
    }
}
