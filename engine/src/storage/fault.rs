//! Test-only fault injection for the real binary, through the storage seam.
//!
//! `SPINDLE_FAULTS` holds rules separated by `;`, each
//! `OP:PATH_PART:SKIP:COUNT:ERRNO`: of the file operations `OP` (`write`,
//! `sync` or `alloc`) on files whose path contains `PATH_PART`, the first
//! `SKIP` succeed, the next `COUNT` fail with `ERRNO` (`eio` or `enospc`)
//! without reaching the device, and later ones succeed again. Counters are
//! per rule and shared by every shard. Example, used by the black-box
//! tests: `write:/faulty-0/:40:3:eio;sync:/faulty-0/:80:3:eio`.
//!
//! The variable is read once, at the first file opened. Files whose path
//! matches no rule carry no hook; when the variable is unset no file does,
//! so the hot path pays one `Option` check.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

pub const FAULTS_ENV: &str = "SPINDLE_FAULTS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    Write,
    Sync,
    Alloc,
}

#[derive(Debug)]
pub struct FaultRule {
    op: FaultOp,
    path_part: String,
    skip: u64,
    count: u64,
    errno: i32,
    seen: AtomicU64,
}

impl FaultRule {
    fn parse(s: &str) -> Result<FaultRule, String> {
        let f: Vec<&str> = s.split(':').collect();
        let [op, path_part, skip, count, errno] = f[..] else {
            return Err(format!("{s:?}: want OP:PATH_PART:SKIP:COUNT:ERRNO"));
        };
        let op = match op {
            "write" => FaultOp::Write,
            "sync" => FaultOp::Sync,
            "alloc" => FaultOp::Alloc,
            _ => return Err(format!("{s:?}: OP is write, sync or alloc")),
        };
        let errno = match errno {
            "eio" => libc::EIO,
            "enospc" => libc::ENOSPC,
            _ => return Err(format!("{s:?}: ERRNO is eio or enospc")),
        };
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
        Ok(FaultRule {
            op,
            path_part: path_part.to_string(),
            skip: num(skip)?,
            count: num(count)?,
            errno,
            seen: AtomicU64::new(0),
        })
    }
}

/// Parses a rule list; empty parts are ignored.
pub fn parse_rules(spec: &str) -> Result<Vec<FaultRule>, String> {
    spec.split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(FaultRule::parse)
        .collect()
}

fn rules() -> &'static [Arc<FaultRule>] {
    static RULES: OnceLock<Vec<Arc<FaultRule>>> = OnceLock::new();
    RULES.get_or_init(|| {
        let Ok(spec) = std::env::var(FAULTS_ENV) else {
            return Vec::new();
        };
        match parse_rules(&spec) {
            Ok(r) => {
                tracing::warn!(spec = %spec, "{FAULTS_ENV} is set: injecting storage faults");
                r.into_iter().map(Arc::new).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "ignoring {FAULTS_ENV}");
                Vec::new()
            }
        }
    })
}

/// The rules that apply to one file.
#[derive(Debug)]
pub struct FileFaults(Vec<Arc<FaultRule>>);

impl FileFaults {
    /// `None` (no hook at all) unless a rule names this path.
    pub fn for_path(path: &Path) -> Option<Box<FileFaults>> {
        let p = path.to_string_lossy();
        let v: Vec<_> = rules()
            .iter()
            .filter(|r| p.contains(&r.path_part))
            .cloned()
            .collect();
        (!v.is_empty()).then(|| Box::new(FileFaults(v)))
    }

    /// An error if a rule says this operation fails.
    pub fn check(&self, op: FaultOp) -> io::Result<()> {
        for r in self.0.iter().filter(|r| r.op == op) {
            let n = r.seen.fetch_add(1, Ordering::Relaxed);
            if n >= r.skip && n - r.skip < r.count {
                return Err(io::Error::from_raw_os_error(r.errno));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_fire_in_their_window() {
        let r = parse_rules("write:/t-0/:2:3:eio; sync:x:0:1:enospc").unwrap();
        assert_eq!(r.len(), 2);
        let f = FileFaults(r.into_iter().map(Arc::new).collect());
        let w: Vec<bool> = (0..7).map(|_| f.check(FaultOp::Write).is_err()).collect();
        assert_eq!(w, [false, false, true, true, true, false, false]);
        let e = f.check(FaultOp::Sync).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert!(f.check(FaultOp::Sync).is_ok());
        assert!(f.check(FaultOp::Alloc).is_ok());
        assert!(parse_rules("write:/t:1:1").is_err());
        assert!(parse_rules("read:/t:1:1:eio").is_err());
        assert!(parse_rules("write:/t:1:1:eperm").is_err());
    }
}
