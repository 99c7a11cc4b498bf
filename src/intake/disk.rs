//! The free-space guard intake consults before it accepts an event, so that a full disk is
//! met with a 429 the client retries rather than a write that fails half-way.

use std::time::Duration;

/// Refuses new events while the filesystem holding the data file is nearly full, so that a
/// write never fails half-way. Looks at the free space at most every 250 ms.
pub struct DiskGuard {
    dir: std::path::PathBuf,
    min_free: u64,
    last: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

const DISK_RECHECK: Duration = Duration::from_millis(250);

impl DiskGuard {
    pub fn new(dir: &std::path::Path, min_free: u64) -> DiskGuard {
        DiskGuard {
            dir: dir.to_path_buf(),
            min_free,
            last: std::sync::Mutex::new(None),
        }
    }

    /// Whether free space is below the minimum now.
    pub fn low(&self) -> bool {
        if self.min_free == 0 {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, low)) = *last
            && at.elapsed() < DISK_RECHECK
        {
            return low;
        }
        let low = free_bytes(&self.dir).is_some_and(|free| free < self.min_free);
        *last = Some((std::time::Instant::now(), low));
        low
    }
}

/// Bytes available to unprivileged writers on the filesystem holding `dir`.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed out-struct of the right type.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}
