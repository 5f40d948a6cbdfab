//! Criterion benchmark of the pool (filled in with the real pool, issue 2).
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let pool = zsfs::pool::Pool::new(Default::default());
    let data = vec![7u8; 1500];
    c.bench_function("alloc_free_1500", |b| {
        b.iter(|| {
            let h = pool.alloc(&data).unwrap();
            pool.free(h);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
