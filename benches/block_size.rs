//! The `block_size=` trade-off, measured on real files (issue 3): for each
//! block size from 4 KiB to 128 KiB, how much memory the blocks of a sample
//! of real files take once stored, against what a 4 KiB random read and write
//! cost in the codec.
//!
//! Run: `cargo bench --bench block_size [-- PATH...]`. PATHs (files or
//! directories) default to the real tree benches/run.sh assembles
//! (/var/tmp/zsfs-bench/tree), else to /usr/share/doc, /usr/include, /usr/lib
//! and ~/.cargo/registry/src. `ZSFS_BENCH_MIB` (default 256) caps the sample;
//! files are picked by a hash of their path, so the sample spreads over the
//! whole tree and is the same on every run.
//!
//! The store's rules, reproduced here so the figure is what a mount would
//! hold: a block whose bytes are all equal costs nothing (zram's same_pages);
//! a block whose LZ4 output is above 7/8 of the block is stored raw ("huge");
//! everything else is stored LZ4-compressed, rounded up to the pool's 16-byte
//! size-class step (32 bytes minimum). The last block of a file is as long as
//! the file's tail. Per-block metadata (handle, block map entry) is left out:
//! it is a few bytes per block, smaller the larger the block.
//!
//! What a 4 KiB random I/O costs with block size B (page cache cold):
//! - read: decompress one B block (the mean decompression time per block);
//! - write: for B > 4 KiB, read-modify-write: decompress B, merge, compress B;
//!   for B = 4 KiB just compress it.
//!
//! Not a criterion benchmark (harness = false): one pass over a fixed sample
//! gives stable totals, and the point is the table, not a regression alarm.
//! `benches/run.sh blocksize` measures the same trade-off end to end (fio
//! latency on zsfs mounted with each block_size).

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BLOCK_SIZES: [usize; 6] = [4096, 8192, 16384, 32768, 65536, 131072];

/// Stored size of one block under the store's rules (see the module comment).
fn stored_size(block: &[u8], compressed_len: usize) -> usize {
    if block.iter().all(|&b| b == block[0]) {
        return 0;
    }
    let huge = block.len() - block.len() / 8;
    if compressed_len > huge {
        return block.len();
    }
    compressed_len.div_ceil(16).max(2) * 16
}

fn walk(path: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        out.push((path.to_path_buf(), meta.len()));
    } else if meta.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                walk(&e.path(), out);
            }
        }
    }
}

fn default_paths() -> Vec<PathBuf> {
    let tree = PathBuf::from("/var/tmp/zsfs-bench/tree");
    if tree.is_dir() {
        return vec![tree];
    }
    let mut v: Vec<PathBuf> = ["/usr/share/doc", "/usr/include", "/usr/lib"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(home) = std::env::var_os("HOME") {
        v.push(Path::new(&home).join(".cargo/registry/src"));
    }
    v
}

/// Files of a deterministic sample of about `budget` bytes.
fn sample(paths: &[PathBuf], budget: u64) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for p in paths {
        walk(p, &mut files);
    }
    // Order by a hash of the path: a spread over every directory, not the
    // alphabetical head of the first one.
    files.sort_by_key(|(p, _)| {
        let mut h = DefaultHasher::new();
        p.hash(&mut h);
        h.finish()
    });
    let mut total = 0;
    let mut out = Vec::new();
    for (p, len) in files {
        if len == 0 || total + len > budget {
            continue;
        }
        if let Ok(data) = fs::read(&p) {
            total += data.len() as u64;
            out.push(data);
        }
    }
    out
}

struct Row {
    block_size: usize,
    blocks: usize,
    original: u64,
    stored: u64,
    /// Bytes in same-filled blocks (stored as one byte in the block map).
    same: u64,
    /// Bytes in blocks stored raw.
    huge: u64,
    /// Bytes of the blocks stored LZ4-compressed (the ones decompressed).
    lz4_bytes: u64,
    compress: Duration,
    decompress: Duration,
}

fn measure(files: &[Vec<u8>], bs: usize) -> Row {
    let mut row = Row {
        block_size: bs,
        blocks: 0,
        original: 0,
        stored: 0,
        same: 0,
        huge: 0,
        lz4_bytes: 0,
        compress: Duration::ZERO,
        decompress: Duration::ZERO,
    };
    let mut cbuf = vec![0u8; lz4_flex::block::get_maximum_output_size(bs)];
    let mut dbuf = vec![0u8; bs];
    // Compressed blocks of one file (bytes, offset in the file), kept to time
    // their decompression apart from compression.
    let mut compressed: Vec<(Vec<u8>, usize)> = Vec::new();
    for data in files {
        compressed.clear();
        for (i, block) in data.chunks(bs).enumerate() {
            let t = Instant::now();
            let n = lz4_flex::block::compress_into(block, &mut cbuf)
                .expect("buffer sized by get_maximum_output_size");
            row.compress += t.elapsed();
            let s = stored_size(block, n);
            match s {
                0 => row.same += block.len() as u64,
                s if s == block.len() => row.huge += s as u64,
                _ => {
                    row.lz4_bytes += block.len() as u64;
                    compressed.push((cbuf[..n].to_vec(), i * bs));
                }
            }
            row.blocks += 1;
            row.original += block.len() as u64;
            row.stored += s as u64;
        }
        for (c, off) in &compressed {
            let orig = &data[*off..(*off + bs).min(data.len())];
            let t = Instant::now();
            let n = lz4_flex::block::decompress_into(c, &mut dbuf[..orig.len()])
                .expect("our own LZ4 output");
            row.decompress += t.elapsed();
            // A codec that loses data would make every figure here meaningless.
            assert!(
                n == orig.len() && dbuf[..n] == *orig,
                "LZ4 round trip changed a block"
            );
        }
    }
    row
}

fn main() {
    // cargo bench passes "--bench" (and filters); anything not a path is ignored.
    let mut paths: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    if paths.is_empty() {
        paths = default_paths();
    }
    let mib: u64 = std::env::var("ZSFS_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let files = sample(&paths, mib << 20);
    let bytes: u64 = files.iter().map(|f| f.len() as u64).sum();
    if bytes == 0 {
        eprintln!("block_size: no readable files under {paths:?}; pass a directory of real files");
        std::process::exit(1);
    }
    println!(
        "block_size trade-off: {} files, {:.1} MiB from {}",
        files.len(),
        bytes as f64 / 1048576.0,
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!("| block_size | ratio | stored MiB | bytes same-filled | bytes stored raw | compress MB/s | decompress MB/s | 4 KiB read: decompress µs | 4 KiB write: (de)compress µs |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for bs in BLOCK_SIZES {
        let r = measure(&files, bs);
        // Time per *full* block: total time scaled by bytes, so the short
        // tail blocks of small files do not flatter large block sizes.
        let full_blocks = |bytes: u64| bytes as f64 / r.block_size as f64;
        let comp_us = r.compress.as_secs_f64() * 1e6 / full_blocks(r.original);
        let decomp_us = r.decompress.as_secs_f64() * 1e6 / full_blocks(r.lz4_bytes.max(1));
        let write_us = if r.block_size == 4096 {
            comp_us
        } else {
            comp_us + decomp_us
        };
        println!(
            "| {} KiB | {:.2}x | {:.1} | {:.1} % | {:.1} % | {:.0} | {:.0} | {:.2} | {:.2} |",
            r.block_size / 1024,
            r.original as f64 / r.stored.max(1) as f64,
            r.stored as f64 / 1048576.0,
            100.0 * r.same as f64 / r.original as f64,
            100.0 * r.huge as f64 / r.original as f64,
            r.original as f64 / r.compress.as_secs_f64() / 1e6,
            r.lz4_bytes as f64 / r.decompress.as_secs_f64().max(1e-9) / 1e6,
            decomp_us,
            write_us,
        );
    }
    println!();
    println!("ratio: file bytes / stored bytes (store rules in benches/block_size.rs). µs columns: one full block, one core.");
}
