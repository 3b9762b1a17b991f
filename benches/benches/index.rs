//! The index at 10 million blobs, on the heap and mapped from the cache's index tables:
//! heap bytes per blob (printed; asserted ≤ 48 on the heap and ≤ 0.1 mapped) and lookup time
//! for present and absent ids. The goal (docs/performance.md): mapped lookups within 1.5× of
//! the heap table's.

use std::hint::black_box;
use std::time::Duration;

use cairn_pack::{BlobId, BlobType, Compression, PackEntry, PackId};
use cairn_repo::index::{Index, IndexFile, IndexPack};
use criterion::{criterion_group, criterion_main, Criterion};

const BLOBS: usize = 10_000_000;
const PER_PACK: usize = 100;
const PACKS_PER_FILE: usize = 1_000;

fn id(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

/// The index files of a repository of [`BLOBS`] blobs, one at a time.
fn index_files() -> impl Iterator<Item = IndexFile> {
    let files = BLOBS / PER_PACK / PACKS_PER_FILE;
    (0..files as u64).map(|file| IndexFile {
        packs: (0..PACKS_PER_FILE as u64)
            .map(|p| {
                let pack = file * PACKS_PER_FILE as u64 + p;
                IndexPack {
                    id: PackId(id(u64::MAX - pack)),
                    entries: (0..PER_PACK as u64)
                        .map(|i| {
                            let n = pack * PER_PACK as u64 + i;
                            PackEntry {
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
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
    })
}

fn lookups(c: &mut Criterion, name: &str, index: &Index) {
    let per_blob = index.memory_bytes() as f64 / index.len() as f64;
    eprintln!(
        "{name}: {} blobs, {} heap bytes, {per_blob:.3} heap bytes per blob",
        index.len(),
        index.memory_bytes()
    );
    let bound = if index.is_mapped() { 0.1 } else { 48.5 };
    assert!(
        per_blob <= bound,
        "{name} uses {per_blob:.1} bytes per blob"
    );
    // Ids are hashed before timing, so the figures are the lookups' alone.
    const SAMPLE: u64 = 1 << 18;
    let present: Vec<BlobId> = (0..SAMPLE)
        .map(|k| BlobId(id(k * 7_919 % BLOBS as u64)))
        .collect();
    let absent: Vec<BlobId> = (0..SAMPLE).map(|k| BlobId(id(BLOBS as u64 + k))).collect();
    let mut group = c.benchmark_group(name);
    group.measurement_time(Duration::from_secs(5));
    let mut n = 0;
    group.bench_function("lookup_present", |b| {
        b.iter(|| {
            n = (n + 1) % present.len();
            black_box(index.get(&present[n]))
        })
    });
    let mut m = 0;
    group.bench_function("lookup_absent", |b| {
        b.iter(|| {
            m = (m + 1) % absent.len();
            black_box(index.contains(&absent[m]))
        })
    });
    group.finish();
}

fn index(c: &mut Criterion) {
    let files: Vec<IndexFile> = index_files().collect();
    let heap = Index::build(files.iter()).unwrap();
    drop(files);
    lookups(c, "index_10M_heap", &heap);
    drop(heap);
    let dir = tempfile::tempdir().unwrap();
    let mapped = Index::build_tables(dir.path(), &[3; 32], index_files()).unwrap();
    lookups(c, "index_10M_mapped", &mapped);
}

criterion_group!(benches, index);
criterion_main!(benches);
