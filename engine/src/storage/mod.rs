//! The storage seam: the only way the engine touches files. `DmaStorage`
//! runs on glommio DMA files (O_DIRECT through io_uring); `SimStorage` is a
//! simulated disk for crash and fault tests. Swapping the runtime means
//! writing another implementation of these two traits.
//!
//! Async fns in traits are used with generics only (never `dyn`), and every
//! future runs on one thread, so no `Send` bounds are wanted.
#![allow(async_fn_in_trait)]

use std::io;
use std::ops::Deref;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

pub mod dma;
pub mod fault;
pub mod sim;

pub use dma::DmaStorage;
pub use sim::{SimDisk, SimStorage};

/// A buffer suitable for direct I/O: aligned start, length a multiple of
/// [`crate::constants::ALIGN`].
pub trait IoBuf: 'static {
    fn as_slice(&self) -> &[u8];
    fn as_mut_slice(&mut self) -> &mut [u8];
    /// Shortens the buffer (destructive); `len` stays aligned.
    fn trim(&mut self, len: usize);
}

/// An open file, readable and writable.
pub trait StorageFile: 'static {
    type Buf: IoBuf;
    type ReadBuf: Deref<Target = [u8]>;
    /// Writes the whole buffer at `pos`; both aligned.
    async fn write_at(&self, buf: Rc<Self::Buf>, pos: u64) -> io::Result<usize>;
    /// Reads up to `len` bytes at `pos` (any alignment); short at EOF.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Self::ReadBuf>;
    async fn fdatasync(&self) -> io::Result<()>;
    async fn truncate(&self, len: u64) -> io::Result<()>;
    /// Allocates blocks so that the file is at least `len` bytes long.
    async fn preallocate(&self, len: u64) -> io::Result<()>;
    async fn size(&self) -> io::Result<u64>;
}

/// Files and directories.
pub trait Storage: Clone + 'static {
    type Buf: IoBuf;
    type File: StorageFile<Buf = Self::Buf>;
    /// An aligned buffer of `len` bytes (a multiple of the alignment).
    fn alloc_buf(&self, len: usize) -> Self::Buf;
    /// Takes back a buffer whose write completed, for reuse.
    fn release_buf(&self, buf: Self::Buf) {
        drop(buf)
    }
    /// Opens read-write, creating an empty file if `create` and absent.
    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// File names in `dir`.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals in `dir` durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// A buffered read-only handle for zero-copy sends (sendfile), if this
    /// storage has real files; `None` makes reads return memory instead.
    fn reader(&self, path: &Path) -> io::Result<Option<Arc<std::fs::File>>>;
}
