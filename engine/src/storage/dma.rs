//! glommio DMA files: O_DIRECT reads and writes through io_uring.

use super::fault::{FaultOp, FileFaults};
use super::{IoBuf, Storage, StorageFile};
use crate::constants::{WRITE_BUF_BYTES, WRITE_BUF_POOL_PER_SHARD};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};
use std::cell::RefCell;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

/// The production storage: glommio DMA files. Must be used from inside a
/// glommio executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct DmaStorage;

impl IoBuf for DmaBuffer {
    fn as_slice(&self) -> &[u8] {
        self.as_bytes()
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
    fn trim(&mut self, len: usize) {
        self.trim_to_size(len)
    }
}

/// A glommio DMA file opened read-write, with the test-only fault hook
/// (`None` unless `SPINDLE_FAULTS` names this file; see `fault.rs`).
pub struct DmaStorageFile(DmaFile, Option<Box<FileFaults>>);

impl DmaStorageFile {
    fn fault(&self, op: FaultOp) -> io::Result<()> {
        match &self.1 {
            None => Ok(()),
            Some(f) => f.check(op),
        }
    }
}

impl StorageFile for DmaStorageFile {
    type Buf = DmaBuffer;
    type ReadBuf = ReadResult;

    async fn write_at(&self, buf: Rc<DmaBuffer>, pos: u64) -> io::Result<usize> {
        let len = buf.len();
        self.fault(FaultOp::Write)?;
        let n = self.0.write_rc_at(buf, pos).await?;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short direct write: {n} of {len} bytes at {pos}"),
            ));
        }
        Ok(n)
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        Ok(self.0.read_at(pos, len).await?)
    }
    async fn fdatasync(&self) -> io::Result<()> {
        self.fault(FaultOp::Sync)?;
        Ok(self.0.fdatasync().await?)
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        Ok(self.0.truncate(len).await?)
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.fault(FaultOp::Alloc)?;
        Ok(self.0.pre_allocate(len, false).await?)
    }
    async fn size(&self) -> io::Result<u64> {
        Ok(self.0.file_size().await?)
    }
}

thread_local! {
    /// Full write buffers for reuse on this shard: fresh 1 MiB allocations
    /// are mmapped and fault in page by page, which costs as much as the copy.
    static BUF_POOL: RefCell<Vec<DmaBuffer>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// Devices whose io_uring poll support glommio has probed correctly on
    /// this thread (glommio keeps the answer per thread).
    static PROBED_DEVICES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// glommio decides once per device whether to use its polled ring by
/// reading the first block of the first DMA file opened there. On an empty
/// file the read succeeds trivially and glommio wrongly enables polling,
/// after which every read fails with EOPNOTSUPP on devices without poll
/// queues (virtio, most cloud disks). So the first open on a device goes to
/// a file holding one block of data.
async fn probe_iopoll_on_data(dir: &Path) -> io::Result<()> {
    let dev = std::fs::metadata(dir)?.dev();
    if PROBED_DEVICES.with(|d| d.borrow().contains(&dev)) {
        return Ok(());
    }
    let probe = dir.join(".iopoll-probe.tmp");
    std::fs::write(&probe, vec![0u8; crate::constants::ALIGN as usize])?;
    let opened = OpenOptions::new().read(true).dma_open(&probe).await;
    std::fs::remove_file(&probe)?;
    opened?.close().await?;
    PROBED_DEVICES.with(|d| d.borrow_mut().push(dev));
    Ok(())
}

impl Storage for DmaStorage {
    type Buf = DmaBuffer;
    type File = DmaStorageFile;

    fn alloc_buf(&self, len: usize) -> DmaBuffer {
        if len == WRITE_BUF_BYTES {
            if let Some(b) = BUF_POOL.with(|p| p.borrow_mut().pop()) {
                return b;
            }
        }
        // Heap memory aligned for O_DIRECT; the registered io_memory is kept
        // small (RLIMIT_MEMLOCK) and is left to glommio's own reads.
        glommio::allocate_dma_buffer_global(len)
    }
    fn release_buf(&self, buf: DmaBuffer) {
        if buf.len() == WRITE_BUF_BYTES {
            BUF_POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < WRITE_BUF_POOL_PER_SHARD {
                    p.push(buf);
                }
            });
        }
    }
    async fn open(&self, path: &Path, create: bool) -> io::Result<DmaStorageFile> {
        if let Some(dir) = path.parent() {
            probe_iopoll_on_data(dir).await?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await?;
        Ok(DmaStorageFile(f, FileFaults::for_path(path)))
    }
    // Directory operations are rare (open, roll, retention) and cheap
    // metadata calls; they run inline.
    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir)? {
            if let Some(n) = e?.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        Ok(names)
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // glommio opens a directory given by a relative path with a bad
        // descriptor (EBADF), which poisoned every log under a relative
        // data dir (the default ./data) at its first segment.
        let dir = std::path::absolute(dir)?;
        let d = glommio::io::Directory::open(&dir).await?;
        d.sync().await?;
        Ok(d.close().await?)
    }
    fn reader(&self, path: &Path) -> io::Result<Option<Arc<std::fs::File>>> {
        Ok(Some(Arc::new(std::fs::File::open(path)?)))
    }
}
