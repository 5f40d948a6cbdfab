//! Setting up the mount: the session and its mount options, the kernel
//! features asked for in INIT, request sizes, and the bdi tuning that can
//! only follow INIT (readahead).
//!
//! Kernel features negotiated in INIT: the writeback cache (`cache=auto`;
//! the kernel then merges small writes into pages and owns mtime/size while
//! pages are dirty), parallel directory operations, readdirplus, async
//! direct I/O, 1 MiB writes, and for `cache=none` FUSE_DIRECT_IO_ALLOW_MMAP
//! so shared mmap still works with direct I/O on every file (the open
//! flags, `cache.rs`). Readdirplus always, not FUSE_READDIRPLUS_AUTO (which
//! sends plain READDIR past the first batch unless lookups follow): every
//! entry a listing returns arrives with its attributes, so a walk after
//! `drop_caches` sends no LOOKUP per file (tar -cf of the bench's real tree:
//! 29,169 LOOKUPs to 1, read back at 71 MB/s instead of 57), nor does an
//! unlink of a listed name. The price is the kernel's inodes for every name
//! a plain `ls` lists. POSIX ACLs (FUSE_POSIX_ACL: the kernel enforces and
//! caches them) with FUSE_DONT_MASK, so that creates carry the unmasked
//! mode and the umask apart and the core can apply a default ACL instead
//! (`fs/acl.rs`). FUSE_HANDLE_KILLPRIV_V2 (see `ZsfsFuse::killpriv`) and
//! FUSE_EXPORT_SUPPORT (file handles).

use super::SessionConfig;
use super::ZsfsFuse;
use crate::config::{AtimeMode, CacheMode, MountFlags};
use crate::fs::Fs;
use crate::sys::{bdi, mountinfo};
use fuser::{InitFlags, KernelConfig};
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Largest write request (the kernel's default FUSE limit, 256 pages).
pub(crate) const MAX_WRITE: u32 = 1 << 20;
/// Largest READ request (the `max_read=` mount option). A 1 MiB read(2),
/// direct (FUSE_ASYNC_DIO) or by readahead, goes out as MAX_WRITE / MAX_READ
/// requests at once, which the request threads decompress in parallel; one
/// 1 MiB request would be decompressed by one thread while the other cores
/// idle.
const MAX_READ: u32 = 512 << 10;
/// Most async requests the kernel keeps in flight (its default is 16).
const MAX_BACKGROUND: u16 = 64;

/// Mount a new zsfs at `mountpoint` with `config`. The caller runs the
/// returned session (`run()` in the foreground, or `spawn()`).
/// `on_destroy` runs once the kernel has torn the connection down, before
/// fuser drops the session (see `ZsfsFuse::on_destroy`).
pub fn new_session(
    config: &SessionConfig,
    fs: Arc<Fs>,
    workers: Vec<Box<dyn Send + Sync>>,
    mountpoint: &Path,
    on_destroy: Option<Box<dyn FnOnce() + Send>>,
) -> io::Result<fuser::Session<ZsfsFuse>> {
    let mut fcfg = fuser::Config::default();
    fcfg.mount_options = vec![
        fuser::MountOption::FSName(config.source.clone()),
        fuser::MountOption::Subtype("zsfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::CUSTOM(format!("max_read={MAX_READ}")),
    ];
    // ro, nosuid, noexec, ... from -o (options.rs owns the mapping).
    fcfg.mount_options
        .extend(fuser_mount_options(&config.mount_flags));
    if config.allow_other {
        fcfg.acl = fuser::SessionACL::All;
    }
    fcfg.n_threads = Some(config.threads.max(1));
    fcfg.clone_fd = true;
    let mut fs = ZsfsFuse::new(config, fs);
    fs.workers = workers;
    *fs.on_destroy.lock() = on_destroy;
    let notifier = fs.notifier.clone();
    let bdi = fs.bdi.clone();
    let session = fuser::Session::new(fs, mountpoint, &fcfg)?;
    let _ = notifier.set(session.notifier());
    if let Some(m) = mountinfo::mount_at(mountpoint) {
        let _ = bdi.set(m.dev);
    }
    Ok(session)
}

impl ZsfsFuse {
    /// INIT: ask for the features in the module comment, keep what the
    /// kernel grants, and size requests.
    pub(crate) fn negotiate(&mut self, config: &mut KernelConfig) {
        let mut want = InitFlags::FUSE_PARALLEL_DIROPS
            // Without READDIRPLUS_AUTO: see the module comment.
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_ASYNC_DIO
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2
            // File handles (open_by_handle_at, NFS export): the kernel
            // looks up "." of a node id it no longer caches.
            | InitFlags::FUSE_EXPORT_SUPPORT
            // ACLs checked by the kernel (process_init_reply sets
            // fc->posix_acl); DONT_MASK (fc->dont_mask) stops fuse_mknod,
            // fuse_mkdir and fuse_create_open from applying the umask
            // themselves, which a parent's default ACL must replace. The
            // core applies the umask otherwise.
            | InitFlags::FUSE_POSIX_ACL
            | InitFlags::FUSE_DONT_MASK;
        match self.cache {
            CacheMode::Auto => want |= InitFlags::FUSE_WRITEBACK_CACHE,
            CacheMode::None => want |= InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
        }
        let mut granted = want;
        if let Err(missing) = config.add_capabilities(want) {
            log::warn!("kernel lacks FUSE capabilities {missing:?}; continuing without them");
            granted = want & !missing;
            let _ = config.add_capabilities(granted);
        }
        self.killpriv = granted.contains(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        if let Err(max) = config.set_max_write(MAX_WRITE) {
            let _ = config.set_max_write(max);
        }
        // Async requests (writeback WRITEs, readahead) in flight: the
        // default 16 (congested at 12) of 1 MiB WRITEs leaves the request
        // threads idle between the kernel's writeback batches.
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
    }

    /// Let sequential page-cache reads come as 1 MiB READs instead of
    /// 256 KiB ones. FUSE_MAX_PAGES (fuser asks for it; max_pages follows
    /// MAX_WRITE) lets one READ carry 1 MiB, but readahead never asks for
    /// more than the backing device's window, which a FUSE mount starts at
    /// the 128 KiB default and which INIT's max_readahead can only lower
    /// (process_init_reply takes the minimum). So, as block drivers size
    /// their own queue's readahead, we set our own mount's window through
    /// sysfs: once, after INIT was processed (it would undo an earlier
    /// write), never lowering a larger value someone chose. Best effort:
    /// a mount by a user who cannot write sysfs keeps the default.
    pub(crate) fn raise_readahead(&self) {
        if self.readahead_done.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(dev) = self.bdi.get() {
            bdi::raise_read_ahead(dev, u64::from(MAX_WRITE / 1024));
        }
    }
}

/// The VFS flags as fuser mount options, as this session mounts with them.
fn fuser_mount_options(flags: &MountFlags) -> Vec<fuser::MountOption> {
    use fuser::MountOption as M;
    let mut v = Vec::new();
    if flags.read_only {
        v.push(M::RO);
    }
    // fuser mounts nosuid,nodev unless told `suid`/`dev`.
    v.push(if flags.nosuid { M::NoSuid } else { M::Suid });
    v.push(if flags.nodev { M::NoDev } else { M::Dev });
    if flags.noexec {
        v.push(M::NoExec);
    }
    // The kernel leaves FUSE's atime to us (S_NOATIME); noatime is still
    // shown in mountinfo, where scripts look for it.
    if flags.atime == AtimeMode::NoAtime {
        v.push(M::NoAtime);
    }
    if flags.sync {
        v.push(M::Sync);
    }
    if flags.dirsync {
        v.push(M::DirSync);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_options;

    #[test]
    fn vfs_flags_map_to_fuser() {
        use fuser::MountOption as M;
        let d = fuser_mount_options(&MountFlags::default());
        assert!(d.contains(&M::NoSuid) && d.contains(&M::NoDev) && !d.contains(&M::RO));
        let c = parse_options("ro,suid,dev,noexec").unwrap();
        let o = fuser_mount_options(&c.mount_flags);
        assert!(o.contains(&M::RO) && o.contains(&M::Suid) && o.contains(&M::Dev));
        assert!(o.contains(&M::NoExec));
    }
}
