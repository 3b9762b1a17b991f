//! The in-memory index at 10 million blobs: bytes per blob (goal ≤ 48; printed and asserted
//! once) and lookup time for present and absent ids.

use std::hint::black_box;
use std::time::Duration;

use cairn_pack::{BlobId, BlobType, Compression, PackEntry, PackId};
use cairn_repo::index::IndexBuilder;
use criterion::{criterion_group, criterion_main, Criterion};

const BLOBS: usize = 10_000_000;
const PER_PACK: usize = 100;

fn id(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

fn index(c: &mut Criterion) {
    let mut builder = IndexBuilder::default();
    let mut entries = Vec::with_capacity(PER_PACK);
    for pack in 0..(BLOBS / PER_PACK) as u64 {
        entries.clear();
        for i in 0..PER_PACK as u64 {
            let n = pack * PER_PACK as u64 + i;
            entries.push(PackEntry {
                blob_type: if n % 50 == 0 {
                    BlobType::Tree
                } else {
                    BlobType::Data
                },
                compression: Compression::Zstd,
                offset: (i * 170_000) as u32,
                stored_len: 160_000,
                plain_len: 1_000_000,
                id: BlobId(id(n)),
            });
        }
        builder
            .add_pack(PackId(id(u64::MAX - pack)), &entries)
            .unwrap();
    }
    let index = builder.finish();
    let per_blob = index.memory_bytes() as f64 / index.len() as f64;
    eprintln!(
        "index: {} blobs in {} packs, {} bytes, {per_blob:.1} bytes per blob",
        index.len(),
        index.packs().len(),
        index.memory_bytes()
    );
    assert!(per_blob <= 48.5, "index uses {per_blob:.1} bytes per blob");

    let mut group = c.benchmark_group("index_10M");
    group.measurement_time(Duration::from_secs(5));
    let mut n = 0u64;
    group.bench_function("lookup_present", |b| {
        b.iter(|| {
            n = (n + 7_919) % BLOBS as u64;
            black_box(index.get(&BlobId(id(n))))
        })
    });
    let mut m = 0u64;
    group.bench_function("lookup_absent", |b| {
        b.iter(|| {
            m += 1;
            black_box(index.contains(&BlobId(id(BLOBS as u64 + m))))
        })
    });
    group.finish();
}

criterion_group!(benches, index);
criterion_main!(benches);
