//! What a zram device set up with zstd would hold a tree in (issue 13's
//! "zram with zstd" figure): every file cut into 4 KiB pages as ext4 on
//! zram stores them (the last one zero-filled), same-filled pages free (zram's
//! same_pages), the rest compressed one page at a time with the `zstd` crate
//! zsfs recompresses with, at the same level, and stored raw when that does
//! not get them under zsmalloc's huge-class size. Prints bytes.
//!
//! `cargo bench --bench zram_zstd -- DIR [LEVEL]` (benches/run.sh runs it
//! on the real tree).

use std::path::Path;

const PAGE: usize = 4096;
/// zsmalloc's huge-class boundary on 4 KiB pages: zram stores a page whose
/// compressed size is above it uncompressed.
const HUGE: usize = PAGE / 16 * 13;
/// zsmalloc's size-class step: an object takes its class's size.
const CLASS_STEP: usize = 16;

fn page_cost(page: &[u8], level: i32, scratch: &mut Vec<u8>) -> usize {
    if page.iter().all(|&b| b == page[0]) {
        return 0;
    }
    scratch.clear();
    let n = zstd::bulk::compress_to_buffer(
        page,
        {
            scratch.resize(zstd::zstd_safe::compress_bound(PAGE), 0);
            &mut scratch[..]
        },
        level,
    )
    .expect("zstd");
    if n > HUGE {
        PAGE
    } else {
        n.div_ceil(CLASS_STEP) * CLASS_STEP
    }
}

fn walk(dir: &Path, level: i32, total: &mut (u64, u64), scratch: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            walk(&e.path(), level, total, scratch);
        } else if t.is_file() {
            let Ok(data) = std::fs::read(e.path()) else {
                continue;
            };
            for chunk in data.chunks(PAGE) {
                let mut page = [0u8; PAGE];
                page[..chunk.len()].copy_from_slice(chunk);
                total.1 += page_cost(&page, level, scratch) as u64;
            }
            total.0 += data.len() as u64;
        }
    }
}

fn main() {
    // cargo bench passes --bench; keep only our arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: cargo bench --bench zram_zstd -- DIR [LEVEL]");
        std::process::exit(2);
    };
    let level = args.get(1).and_then(|l| l.parse().ok()).unwrap_or(3);
    let mut total = (0u64, 0u64);
    walk(Path::new(dir), level, &mut total, &mut Vec::new());
    eprintln!(
        "zram-zstd-{level} estimate of {dir}: {} bytes of files in {} bytes ({:.2}x)",
        total.0,
        total.1,
        total.0 as f64 / total.1.max(1) as f64
    );
    println!("{}", total.1);
}
