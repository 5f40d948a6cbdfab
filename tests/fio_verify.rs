//! Data integrity under fio: `verify=crc32c`, `verify_fatal=1`.
//!
//! Phase 1 writes with 2 jobs each (sequential 1 MiB, random 4 KiB), and
//! fio verifies what it wrote; then the page cache is dropped
//! (`echo 3 > /proc/sys/vm/drop_caches`), so phase 2 (the same jobs with
//! `verify_only=1`) reads everything back from zsfs itself, not from the
//! kernel's cached copies. Root only (drop_caches).

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

/// Bytes per job: 2 x 192 MiB sequential + 2 x 48 MiB random (12,288
/// random 4 KiB writes per job): large enough to cross many blocks and
/// zspages, small enough for a 2-core CI machine.
const SEQ_SIZE: &str = "192m";
const RAND_SIZE: &str = "48m";

fn job_file(dir: &Path, verify_only: bool, extra: &str) -> String {
    let vo = if verify_only { "verify_only=1\n" } else { "" };
    format!(
        "[global]
directory={dir}
ioengine=psync
verify=crc32c
verify_fatal=1
do_verify=1
{vo}numjobs=2
group_reporting=0
fallocate=none
{extra}
[seq1m]
rw=write
bs=1m
size={SEQ_SIZE}

[rand4k]
stonewall
rw=randwrite
bs=4k
size={RAND_SIZE}
randrepeat=1
",
        dir = dir.display()
    )
}

fn run_fio(fio: &Path, jobs: &Path, what: &str, m: &MountGuard) {
    if let Err(e) = try_fio(fio, jobs, what) {
        panic!("{e}\ndaemon log:\n{}", m.log());
    }
}

fn try_fio(fio: &Path, jobs: &Path, what: &str) -> Result<(), String> {
    let out = Command::new(fio)
        // fio leaves *-verify.state files in its working directory.
        .current_dir(jobs.parent().unwrap())
        .arg("--output-format=terse")
        .arg(jobs)
        .output()
        .expect("run fio");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !(out.status.success() && !stderr.contains("verify:") && !stdout.contains("bad magic")) {
        return Err(format!(
            "fio {what} failed ({}):\n{stdout}\n{stderr}",
            out.status
        ));
    }
    // Terse v3: field 6 is read KiB, field 47 is write KiB, per job.
    let (mut rd, mut wr) = (0u64, 0u64);
    for l in stdout.lines() {
        let f: Vec<&str> = l.split(';').collect();
        if f.len() > 47 {
            rd += f[5].parse::<u64>().unwrap_or(0);
            wr += f[46].parse::<u64>().unwrap_or(0);
        }
    }
    eprintln!(
        "fio {what}: read {} MiB, wrote {} MiB",
        rd / 1024,
        wr / 1024
    );
    if rd == 0 {
        return Err(format!(
            "fio {what} read nothing: no verification happened\n{stdout}"
        ));
    }
    Ok(())
}

fn fio_verify(options: &str) -> MountGuard {
    fio_verify_with(options, "", |_| None)
}

/// `fio_verify` with `extra` lines in the jobs' [global] and `beside(mount)`
/// running through both phases.
fn fio_verify_with(
    options: &str,
    extra: &str,
    beside: impl FnOnce(&Path) -> Option<Recompressing>,
) -> MountGuard {
    assert!(
        is_root(),
        "fio_verify drops the page cache, which needs root"
    );
    let fio = require_program("fio", "apt-get install fio");
    let _heavy = heavy_lock();
    let m = MountGuard::new(options);
    let work = tempfile::tempdir().unwrap();
    let write_jobs = work.path().join("write.fio");
    let reread_jobs = work.path().join("reread.fio");
    std::fs::write(&write_jobs, job_file(m.path(), false, extra)).unwrap();
    std::fs::write(&reread_jobs, job_file(m.path(), true, extra)).unwrap();

    let side = beside(m.path());
    run_fio(&fio, &write_jobs, "write+verify", &m);
    drop_caches();
    run_fio(&fio, &reread_jobs, "re-read after drop_caches", &m);
    drop(side);
    m
}

#[test]
fn fio_verify_default_options() {
    fio_verify("").unmount_clean();
}

#[test]
fn fio_verify_large_blocks() {
    fio_verify("block_size=128k").unmount_clean();
}

/// 480 MiB of data through a 32 MiB pool: the re-read after drop_caches
/// comes mostly from the backing file.
#[test]
fn fio_verify_pool_limit_far_below_data() {
    let m = fio_verify("pool_limit=32m");
    m.assert_wrote_back_and_read_back("fio verify");
    m.unmount_clean();
}

/// Data zstd packs well, recompressed into zstd units while fio writes,
/// verifies and re-reads it: the re-read after drop_caches comes from units.
/// Every 4 KiB carries fio's verify header (offset, job number, crc32c) and
/// is filled with a text pattern, so no two blocks are equal. (A bare
/// `verify=pattern` gives both jobs of a kind the same bytes at the same
/// offsets: dedup shares them all, recompression rightly leaves shared
/// objects alone, and whether anything was recompressed depended on a pass
/// catching a block before its twin was written. fio's
/// buffer_compress_percentage data is random bytes and zeros, which LZ4
/// already gets: zstd saves less than the 1/8 a unit must.)
#[test]
fn fio_verify_recompressing() {
    let m = fio_verify_with(
        "recompress_after=1s",
        "verify_interval=4k\nverify_pattern=\"zsfs keeps idle data in zstd units \"\n",
        |mnt| {
            Some(Recompressing::start(
                mnt,
                std::time::Duration::from_millis(200),
            ))
        },
    );
    let r = counters(m.path());
    assert!(
        get(&r, "recomp_pages") > 0,
        "nothing was recompressed: {r:?}"
    );
    assert!(
        get(&r, "recomp_reads") > 0,
        "no read came from a unit: {r:?}"
    );
    m.unmount_clean();
}

/// The re-read phase really compares: on a fresh mount, where nothing was
/// written, it must fail.
#[test]
fn fio_reread_fails_on_data_that_was_never_written() {
    assert!(is_root(), "fio tests run as root");
    let fio = require_program("fio", "apt-get install fio");
    let _heavy = heavy_lock();
    let m = MountGuard::new("");
    let work = tempfile::tempdir().unwrap();
    let reread_jobs = work.path().join("reread.fio");
    std::fs::write(&reread_jobs, job_file(m.path(), true, "")).unwrap();
    let r = try_fio(&fio, &reread_jobs, "re-read of nothing");
    assert!(
        r.is_err(),
        "verify_only passed on a mount that holds no data"
    );
    m.unmount_clean();
}
