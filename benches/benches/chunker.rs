//! Chunking throughput on 256 MiB of real data: cairn's keyed chunker (slice and streaming)
//! against the `fastcdc` crate's slice and streaming APIs, at restic's default sizes.
//! Goal: keyed streaming ≥ 90 % of `fastcdc::v2020::FastCDC` (slice).

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use cairn_chunker::{Chunker, ChunkerParams, ChunkerSecret};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn chunking(c: &mut Criterion) {
    let data = cairn_benches::real_data(256 << 20);
    let p = ChunkerParams::DEFAULT;
    let keyed = Chunker::new(p, &ChunkerSecret::from_bytes([42; 32]));
    let mut group = c.benchmark_group("chunk_256MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));

    group.bench_function("fastcdc_slice", |b| {
        b.iter(|| {
            fastcdc::v2020::FastCDC::new(black_box(&data), p.min(), p.avg(), p.max())
                .map(|c| c.length)
                .sum::<usize>()
        })
    });
    group.bench_function("cairn_keyed_slice", |b| {
        b.iter(|| {
            keyed
                .chunks(black_box(&data))
                .map(|c| c.length)
                .sum::<usize>()
        })
    });
    group.bench_function("cairn_keyed_stream", |b| {
        b.iter(|| {
            keyed
                .stream(Cursor::new(black_box(&data[..])))
                .map(|c| c.unwrap().data.len())
                .sum::<usize>()
        })
    });
    group.bench_function("fastcdc_stream", |b| {
        b.iter(|| {
            fastcdc::v2020::StreamCDC::new(
                Cursor::new(black_box(&data[..])),
                p.min(),
                p.avg(),
                p.max(),
            )
            .map(|c| c.unwrap().length)
            .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, chunking);
criterion_main!(benches);
