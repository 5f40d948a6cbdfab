//! Pool benchmark on a realistic object-size distribution.
//!
//! The distribution (benches/data/lz4_sizes_4k.txt) is the lz4_flex block
//! size of every 4 KiB block of files under /usr/lib and /usr/share on the
//! machine it was recorded on, bucketed to 16 B; blocks that do not compress
//! below 4096 B count as 4096 (stored raw, as zram does) and all-zero blocks
//! are left out (the store keeps those as one byte). Re-record it with
//! `ZSFS_RECORD_SIZES=1 cargo bench --bench pool`.
//!
//! Measured:
//! - `churn/*`: steady state with 100 000 live objects; one op = allocate and
//!   fill an object of a sampled size, then free a random live one. Pool vs a
//!   `Box<[u8]>` per object.
//! - `read/*`: read (lend to a closure) a random live object.
//! - memory (printed, not timed): pages held / live bytes after freeing a
//!   random half of 200 000 objects, before and after `compact()`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use zsfs::config::Config;
use zsfs::pool::{Handle, Pool, PoolConfig};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/data/lz4_sizes_4k.txt");

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// (size, count) buckets from the recorded histogram.
fn load_histogram() -> Vec<(usize, u64)> {
    let text = std::fs::read_to_string(DATA).expect("benches/data/lz4_sizes_4k.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let size = it.next().unwrap().parse().unwrap();
            let count = it.next().unwrap().parse().unwrap();
            (size, count)
        })
        .collect()
}

/// Sampler over the histogram: a size uniform within its 16 B bucket.
struct Sizes {
    cumulative: Vec<(u64, usize)>,
    total: u64,
}
impl Sizes {
    fn new() -> Sizes {
        let mut acc = 0;
        let cumulative = load_histogram()
            .into_iter()
            .map(|(s, c)| {
                acc += c;
                (acc, s)
            })
            .collect();
        Sizes {
            cumulative,
            total: acc,
        }
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let x = rng.next() % self.total;
        let i = self.cumulative.partition_point(|&(c, _)| c <= x);
        let top = self.cumulative[i].1;
        if top >= 4096 {
            4096
        } else {
            top - (rng.next() % 16) as usize
        }
    }
}

fn record_sizes() {
    use std::io::Write;
    let mut hist = vec![0u64; 4096 / 16 + 1];
    let (mut zero, mut blocks, mut bytes) = (0u64, 0u64, 0u64);
    let budget = 512u64 << 20;
    let mut stack = vec![
        Path::new("/usr/lib").to_path_buf(),
        Path::new("/usr/share").to_path_buf(),
    ];
    let mut block = vec![0u8; 4096];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && bytes < budget {
                let Ok(data) = std::fs::read(e.path()) else {
                    continue;
                };
                bytes += data.len() as u64;
                for chunk in data.chunks(4096) {
                    block.fill(0);
                    block[..chunk.len()].copy_from_slice(chunk);
                    blocks += 1;
                    if block.iter().all(|&b| b == 0) {
                        zero += 1;
                        continue;
                    }
                    let c = lz4_flex::block::compress(&block).len().min(4096);
                    hist[c.div_ceil(16)] += 1;
                }
            }
        }
    }
    let mut f = std::fs::File::create(DATA).unwrap();
    writeln!(
        f,
        "# lz4_flex 0.11 block sizes of 4 KiB blocks of files under /usr/lib and /usr/share"
    )
    .unwrap();
    writeln!(
        f,
        "# ({bytes} bytes read, {blocks} blocks, {zero} all-zero blocks left out)."
    )
    .unwrap();
    writeln!(
        f,
        "# Columns: size bucket upper bound in bytes (16 B buckets; 4096 = stored raw), count."
    )
    .unwrap();
    for (i, &n) in hist.iter().enumerate() {
        if n > 0 {
            writeln!(f, "{} {n}", (i * 16).max(16)).unwrap();
        }
    }
    eprintln!("recorded {blocks} blocks into {DATA}");
}

fn fill(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next() as u8).collect()
}

const LIVE: usize = 100_000;
const OPS: usize = 1000;

fn bench(c: &mut Criterion) {
    if std::env::var_os("ZSFS_RECORD_SIZES").is_some() {
        record_sizes();
    }
    let sizes = Sizes::new();
    let mut rng = Rng(0x1234_5678);
    let src = fill(&mut rng, 4096);
    memory_ratio(&sizes);
    writeback_figures(&sizes);

    // Steady-state churn.
    let mut g = c.benchmark_group("churn");
    g.throughput(Throughput::Elements(OPS as u64));
    {
        let pool = Pool::new(zsfs::mount::pool_config(&Config::default()), None);
        let mut live: Vec<Handle> = (0..LIVE)
            .map(|_| pool.alloc(&src[..sizes.sample(&mut rng)]).unwrap())
            .collect();
        g.bench_function("pool_alloc_write_free", |b| {
            b.iter_batched(
                || {
                    (0..OPS)
                        .map(|_| (sizes.sample(&mut rng), rng.next() as usize % LIVE))
                        .collect::<Vec<_>>()
                },
                |plan| {
                    for (len, victim) in plan {
                        let h = pool.alloc(&src[..len]).unwrap();
                        pool.free(std::mem::replace(&mut live[victim], h));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let mut boxes: Vec<Box<[u8]>> = (0..LIVE)
            .map(|_| src[..sizes.sample(&mut rng)].into())
            .collect();
        g.bench_function("box_alloc_write_free", |b| {
            b.iter_batched(
                || {
                    (0..OPS)
                        .map(|_| (sizes.sample(&mut rng), rng.next() as usize % LIVE))
                        .collect::<Vec<_>>()
                },
                |plan| {
                    for (len, victim) in plan {
                        let nb: Box<[u8]> = src[..len].into();
                        drop(std::mem::replace(&mut boxes[victim], nb));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();

        let mut g = c.benchmark_group("read");
        g.throughput(Throughput::Elements(OPS as u64));
        g.bench_function("pool_read_with", |b| {
            b.iter_batched(
                || {
                    (0..OPS)
                        .map(|_| rng.next() as usize % LIVE)
                        .collect::<Vec<_>>()
                },
                |plan| {
                    for i in plan {
                        black_box(
                            pool.read_with(live[i], |d| d[d.len() / 2..].first().copied())
                                .unwrap(),
                        );
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("box_read", |b| {
            b.iter_batched(
                || {
                    (0..OPS)
                        .map(|_| rng.next() as usize % LIVE)
                        .collect::<Vec<_>>()
                },
                |plan| {
                    for i in plan {
                        let d: &[u8] = black_box(&boxes[i]);
                        // Same work as the pool's closure plus the copy the
                        // pool makes, so the figures compare like for like.
                        let mut v = Vec::with_capacity(d.len());
                        v.extend_from_slice(d);
                        black_box(v[v.len() / 2..].first().copied());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

/// Pages held / live bytes after freeing a random half, before and after
/// compaction. Printed so the README and the resolve note can quote it.
fn memory_ratio(sizes: &Sizes) {
    let mut rng = Rng(42);
    let src = fill(&mut rng, 4096);
    let pool = Pool::new(zsfs::mount::pool_config(&Config::default()), None);
    let n = 200_000;
    let mut hs: Vec<(Handle, usize)> = (0..n)
        .map(|_| {
            let len = sizes.sample(&mut rng);
            (pool.alloc(&src[..len]).unwrap(), len)
        })
        .collect();
    let full = pool.stats();
    let full_ratio = full.pages_held as f64 * 4096.0 / full.bytes_stored as f64;
    // Free a random half.
    for i in (1..hs.len()).rev() {
        let j = rng.next() as usize % (i + 1);
        hs.swap(i, j);
    }
    for (h, _) in hs.drain(n / 2..) {
        pool.free(h);
    }
    let before = pool.stats();
    let freed = pool.compact();
    let after = pool.stats();
    let r = |s: &zsfs::pool::PoolStats| s.pages_held as f64 * 4096.0 / s.bytes_stored as f64;
    let rm = |s: &zsfs::pool::PoolStats| {
        (s.pages_held as f64 * 4096.0 + s.metadata_bytes as f64) / s.bytes_stored as f64
    };
    println!(
        "memory: {} objects, mean {:.0} B; all live: pages/live = {full_ratio:.4}; \
         after freeing a random half: {:.4} before compact, {:.4} after (freed {freed} pages); \
         with heap metadata: {:.4} after; huge objects {}",
        full.objects,
        full.bytes_stored as f64 / full.objects as f64,
        r(&before),
        r(&after),
        rm(&after),
        after.huge_objects
    );
    pool.debug_check_consistency();
}

/// Writeback of a whole pool to an unlinked file in $TMPDIR and reading it
/// all back (one pread per object; the file is still in the page cache, so
/// this is the pool's cost, not the disk's). Printed, not timed by criterion.
fn writeback_figures(sizes: &Sizes) {
    use std::time::Instant;
    use zsfs::pool::WritebackRequest;
    let mut rng = Rng(7);
    let src = fill(&mut rng, 4096);
    let pool = zsfs::mount::test_pool(
        PoolConfig {
            ..zsfs::mount::pool_config(&Config::default())
        },
        &zsfs::config::Backing::TempFile,
    );
    let hs: Vec<(Handle, usize)> = (0..50_000)
        .map(|_| {
            let len = sizes.sample(&mut rng);
            (pool.alloc(&src[..len]).unwrap(), len)
        })
        .collect();
    let bytes: usize = hs.iter().map(|&(_, l)| l).sum();
    let mb = bytes as f64 / 1e6;
    let t = Instant::now();
    let r = pool.writeback(WritebackRequest::All).unwrap();
    let wt = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut order: Vec<usize> = (0..hs.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.next() as usize % (i + 1));
    }
    for &i in &order {
        let (h, len) = hs[i];
        assert_eq!(pool.read_with(h, |d| d.len()).unwrap(), len);
    }
    let rt = t.elapsed().as_secs_f64();
    let st = pool.stats();
    println!(
        "writeback: {} objects, {mb:.0} MB: writeback all {:.0} MB/s ({} zspages, {} pages freed); \
         random read-back {:.0} MB/s = {:.0} K objects/s; bd_count {} pages for {} object pages",
        hs.len(),
        mb / wt,
        r.zspages,
        r.pages_freed,
        mb / rt,
        hs.len() as f64 / rt / 1e3,
        st.bd_count,
        st.disk_bytes.div_ceil(4096)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
