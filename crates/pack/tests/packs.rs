//! Pack round trips, tampering, truncation and the two-step tail read.

use cairn_pack::{
    decode_blob, BlobEncoder, BlobType, FinishedPack, MasterKeys, PackError, PackReader,
    PackWriter, TAIL_READ_LEN,
};
use proptest::prelude::*;

fn keys() -> MasterKeys {
    MasterKeys::from_parts([1; 32], [2; 32], [3; 32])
}

fn build(blobs: &[(BlobType, Vec<u8>)], level: Option<i32>) -> FinishedPack {
    let encoder = BlobEncoder::new(level).unwrap();
    let mut writer = PackWriter::new(1 << 20).unwrap();
    for (t, data) in blobs {
        writer
            .add(encoder.encode(&keys(), *t, data).unwrap())
            .unwrap();
    }
    writer.finish(&keys()).unwrap()
}

fn small_pack() -> (Vec<(BlobType, Vec<u8>)>, Vec<u8>) {
    let blobs = vec![
        (
            BlobType::Data,
            b"first blob, compressible compressible compressible".to_vec(),
        ),
        (BlobType::Tree, b"{\"nodes\":[]}".to_vec()),
        (BlobType::Data, vec![7u8; 10]),
    ];
    let pack = build(&blobs, Some(3)).to_vec();
    (blobs, pack)
}

#[test]
fn pack_id_is_blake3_of_the_file() {
    let blobs = vec![(BlobType::Data, b"x".to_vec())];
    let pack = build(&blobs, None);
    assert_eq!(pack.id, cairn_pack::PackId::of(&pack.to_vec()));
    assert_eq!(pack.len, pack.to_vec().len() as u64);
}

#[test]
fn every_single_byte_flip_is_detected() {
    let (blobs, pack) = small_pack();
    let entries = PackReader::from_bytes(&keys(), &pack).unwrap();
    for i in 0..pack.len() {
        let mut bad = pack.clone();
        bad[i] ^= 0x01;
        match PackReader::from_bytes(&keys(), &bad) {
            Err(_) => {
                // The flip hit the header or trailer, which must then be what failed.
                assert!(
                    i as u64 >= entries.last().unwrap().range().end,
                    "byte {i}: header failed for a data flip"
                );
            }
            Ok(parsed) => {
                assert_eq!(
                    parsed, entries,
                    "byte {i}: header changed yet authenticated"
                );
                let hit: Vec<_> = parsed
                    .iter()
                    .filter(|e| e.range().contains(&(i as u64)))
                    .collect();
                assert_eq!(hit.len(), 1, "byte {i} must lie in exactly one blob");
                for (entry, (_, plain)) in parsed.iter().zip(&blobs) {
                    let result =
                        decode_blob(&keys(), entry, PackReader::blob_bytes(&bad, entry).unwrap());
                    if entry == hit[0] {
                        assert!(
                            matches!(result, Err(PackError::Authentication { .. })),
                            "byte {i}: {result:?}"
                        );
                    } else {
                        assert_eq!(&result.unwrap(), plain);
                    }
                }
            }
        }
    }
}

#[test]
fn every_truncation_fails_cleanly() {
    let (_, pack) = small_pack();
    for cut in 0..pack.len() {
        assert!(
            PackReader::from_bytes(&keys(), &pack[..cut]).is_err(),
            "prefix of {cut} bytes parsed"
        );
        assert!(
            PackReader::from_bytes(&keys(), &pack[cut + 1..]).is_err(),
            "suffix from {} parsed",
            cut + 1
        );
    }
}

#[test]
fn wrong_key_fails_authentication() {
    let (_, pack) = small_pack();
    let other = MasterKeys::from_parts([9; 32], [2; 32], [3; 32]);
    assert!(matches!(
        PackReader::from_bytes(&other, &pack),
        Err(PackError::Authentication { .. })
    ));
    let entries = PackReader::from_bytes(&keys(), &pack).unwrap();
    let bytes = PackReader::blob_bytes(&pack, &entries[0]).unwrap();
    assert!(matches!(
        decode_blob(&other, &entries[0], bytes),
        Err(PackError::Authentication { .. })
    ));
}

#[test]
fn swapping_two_blobs_fails() {
    let (_, pack) = small_pack();
    let entries = PackReader::from_bytes(&keys(), &pack).unwrap();
    // Decode blob 0's bytes under blob 2's entry with the lengths forced equal.
    let first = PackReader::blob_bytes(&pack, &entries[0]).unwrap();
    let mut moved = entries[2];
    moved.stored_len = entries[0].stored_len;
    assert!(decode_blob(&keys(), &moved, first).is_err());
}

#[test]
fn large_header_needs_exactly_one_more_read() {
    // 2000 tiny blobs: the sealed header (≈92 KB) is larger than the first tail read.
    let blobs: Vec<_> = (0..2000u32)
        .map(|i| (BlobType::Data, i.to_le_bytes().to_vec()))
        .collect();
    let pack = build(&blobs, None);
    let bytes = pack.to_vec();
    let len = bytes.len() as u64;
    let tail_range = PackReader::tail_range(len);
    assert_eq!(tail_range.end - tail_range.start, TAIL_READ_LEN);
    let tail = &bytes[tail_range.start as usize..];
    assert!(PackReader::from_tail(&keys(), len, tail).is_err());
    let header_range = PackReader::locate_header(len, tail).unwrap();
    assert!(header_range.start < tail_range.start);
    let sealed = &bytes[header_range.start as usize..header_range.end as usize];
    let entries = PackReader::parse_header(&keys(), len, header_range, sealed).unwrap();
    assert_eq!(entries, pack.entries);
}

#[test]
fn writer_rejects_bad_target_sizes() {
    assert!(PackWriter::new(0).is_err());
    assert!(PackWriter::new(usize::MAX).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_trip(
        blobs in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..3000), 1usize..5), 0..12),
        level in prop::option::of(1i32..4),
    ) {
        let blobs: Vec<_> = blobs
            .into_iter()
            .map(|(tree, data, rep)| (if tree { BlobType::Tree } else { BlobType::Data }, data.repeat(rep)))
            .collect();
        let pack = build(&blobs, level);
        let bytes = pack.to_vec();
        let entries = PackReader::from_bytes(&keys(), &bytes).unwrap();
        prop_assert_eq!(&entries, &pack.entries);
        prop_assert_eq!(entries.len(), blobs.len());
        for (entry, (t, plain)) in entries.iter().zip(&blobs) {
            prop_assert_eq!(entry.blob_type, *t);
            prop_assert_eq!(entry.id, keys().blob_id(plain));
            let decoded = decode_blob(&keys(), entry, PackReader::blob_bytes(&bytes, entry).unwrap()).unwrap();
            prop_assert_eq!(&decoded, plain);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        cairn_pack::fuzzing::pack_file(&data);
        cairn_pack::fuzzing::pack_header_plaintext(&data);
        cairn_pack::fuzzing::blob(&data);
        cairn_pack::fuzzing::key_file(&data);
    }
}
