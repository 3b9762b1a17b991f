//! Blob encode (id + zstd + XChaCha20-Poly1305) and decode throughput on real data cut into
//! 1 MiB chunks, next to each stage alone so the overhead over the sum of the parts shows.
//! Goal: encode time within 10 % of hash + compress + encrypt.

use std::hint::black_box;
use std::time::Duration;

use cairn_pack::{decode_blob, BlobEncoder, BlobType, MasterKeys, PackEntry};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CHUNK: usize = 1 << 20;

fn blobs(c: &mut Criterion) {
    let data = cairn_benches::real_data(256 << 20);
    let data = &data[..64 << 20];
    let keys = MasterKeys::from_parts([1; 32], [2; 32], [3; 32]);
    let mut group = c.benchmark_group("blob_64MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("part_blake3_keyed", |b| {
        b.iter(|| {
            data.chunks(CHUNK)
                .map(|c| keys.blob_id(black_box(c)).0[0] as usize)
                .sum::<usize>()
        })
    });
    for level in [1, 3] {
        let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
        group.bench_function(format!("part_zstd{level}"), |b| {
            b.iter(|| {
                data.chunks(CHUNK)
                    .map(|c| compressor.compress(black_box(c)).unwrap().len())
                    .sum::<usize>()
            })
        });
    }
    let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
    let mut buffer = vec![0u8; CHUNK];
    group.bench_function("part_xchacha20poly1305", |b| {
        b.iter(|| {
            for c in data.chunks(CHUNK) {
                buffer[..c.len()].copy_from_slice(c);
                black_box(
                    cipher
                        .encrypt_in_place_detached(
                            XNonce::from_slice(&[0; 24]),
                            b"",
                            &mut buffer[..c.len()],
                        )
                        .unwrap(),
                );
            }
        })
    });
    for level in [1, 3] {
        let encoder = BlobEncoder::new(Some(level)).unwrap();
        group.bench_function(format!("encode_zstd{level}"), |b| {
            b.iter(|| {
                data.chunks(CHUNK)
                    .map(|c| {
                        encoder
                            .encode(&keys, BlobType::Data, black_box(c))
                            .unwrap()
                            .sealed
                            .len()
                    })
                    .sum::<usize>()
            })
        });
    }
    let encoder = BlobEncoder::new(Some(3)).unwrap();
    let encoded: Vec<_> = data
        .chunks(CHUNK)
        .map(|c| encoder.encode(&keys, BlobType::Data, c).unwrap())
        .collect();
    let mut decompressor = zstd::bulk::Decompressor::new().unwrap();
    let frames: Vec<_> = data
        .chunks(CHUNK)
        .map(|c| zstd::bulk::compress(c, 3).unwrap())
        .collect();
    group.bench_function("part_zstd3_decompress", |b| {
        b.iter(|| {
            frames
                .iter()
                .map(|f| decompressor.decompress(black_box(f), CHUNK).unwrap().len())
                .sum::<usize>()
        })
    });
    group.bench_function("decode_zstd3", |b| {
        b.iter(|| {
            encoded
                .iter()
                .map(|blob| {
                    let entry = PackEntry {
                        blob_type: blob.blob_type,
                        compression: blob.compression,
                        offset: 0,
                        stored_len: blob.sealed.len() as u32,
                        plain_len: blob.plain_len,
                        id: blob.id,
                    };
                    decode_blob(&keys, &entry, black_box(&blob.sealed))
                        .unwrap()
                        .len()
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, blobs);
criterion_main!(benches);
