//! Property tests of the keyed chunker: coverage, bounds, locality, key dependence.

use std::io::Read;

use cairn_chunker::{Chunker, ChunkerParams, ChunkerSecret};
use proptest::prelude::*;

fn small_params() -> ChunkerParams {
    ChunkerParams::new(256, 1024, 4096).unwrap()
}

fn keyed(seed: u8) -> Chunker {
    Chunker::new(small_params(), &ChunkerSecret::from_bytes([seed; 32]))
}

/// Pseudo-random but compressible-free data, deterministic per seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut xof = blake3::Hasher::new_derive_key("cairn chunker test noise")
        .update(&seed.to_le_bytes())
        .finalize_xof();
    xof.fill(&mut out);
    out
}

/// Reads in the sizes given by a cycling pattern (0 means a spurious `Interrupted`).
struct Patterned {
    data: Vec<u8>,
    pos: usize,
    pattern: Vec<usize>,
    call: usize,
}

impl Read for Patterned {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let step = self.pattern[self.call % self.pattern.len()];
        self.call += 1;
        if step == 0 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn stream_reassembles_input_and_matches_slice_cuts(
        len in 0usize..40_000,
        seed in any::<u64>(),
        pattern in prop::collection::vec(0usize..9000, 1..6),
        key in any::<u8>(),
    ) {
        prop_assume!(pattern.iter().any(|&s| s > 0));
        let data = noise(len, seed);
        let chunker = keyed(key);
        let slice: Vec<_> = chunker.chunks(&data).collect();
        let reader = Patterned { data: data.clone(), pos: 0, pattern, call: 0 };
        let mut rebuilt = Vec::new();
        let mut streamed = Vec::new();
        for chunk in chunker.stream(reader) {
            let chunk = chunk.unwrap();
            prop_assert_eq!(chunk.offset as usize, rebuilt.len());
            streamed.push((chunk.offset as usize, chunk.data.len()));
            rebuilt.extend_from_slice(&chunk.data);
        }
        prop_assert_eq!(&rebuilt, &data);
        let slice: Vec<_> = slice.iter().map(|c| (c.offset, c.length)).collect();
        prop_assert_eq!(&streamed, &slice);
        // A size hint (right, too small or too large) never changes the cuts.
        for hint in [len as u64, (len / 3) as u64, 2 * len as u64 + 10, 0] {
            let hinted: Vec<_> = chunker
                .stream_sized(&data[..], hint)
                .map(|c| { let c = c.unwrap(); (c.offset as usize, c.data.len()) })
                .collect();
            prop_assert_eq!(&hinted, &slice, "hint {}", hint);
        }
    }

    #[test]
    fn sizes_within_bounds_except_last(len in 1usize..60_000, seed in any::<u64>(), key in any::<u8>()) {
        let data = noise(len, seed);
        let chunker = keyed(key);
        let p = chunker.params();
        let chunks: Vec<_> = chunker.chunks(&data).collect();
        let total: usize = chunks.iter().map(|c| c.length).sum();
        prop_assert_eq!(total, len);
        for (i, c) in chunks.iter().enumerate() {
            prop_assert!(c.length <= p.max());
            prop_assert!(c.length > 0);
            if i + 1 < chunks.len() {
                prop_assert!(c.length >= p.min(), "chunk {} of {} is {} bytes", i, chunks.len(), c.length);
            }
        }
    }

    #[test]
    fn insertion_near_start_changes_few_chunks(
        seed in any::<u64>(),
        at in 0usize..2000,
        inserted in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let data = noise(200_000, seed);
        let mut edited = data[..at].to_vec();
        edited.extend_from_slice(&inserted);
        edited.extend_from_slice(&data[at..]);
        let chunker = keyed(7);
        let before: std::collections::HashSet<&[u8]> =
            chunker.chunks(&data).map(|c| &data[c.offset..c.offset + c.length]).collect();
        let after: Vec<&[u8]> =
            chunker.chunks(&edited).map(|c| &edited[c.offset..c.offset + c.length]).collect();
        let new = after.iter().filter(|c| !before.contains(*c)).count();
        // ~160 chunks; cut-point skipping below `min` can carry an edit over a few boundaries
        // before the chunker re-synchronises. How many is chance, falling geometrically: 9
        // has been seen (in the regressions file), so the bound leaves room; an edit that
        // re-chunked the rest of the data (~155) still fails it.
        prop_assert!(new <= 16, "{} of {} chunks changed", new, after.len());
    }
}

#[test]
fn different_secrets_cut_differently() {
    let data = noise(1 << 20, 42);
    let cuts = |key: u8| -> Vec<usize> { keyed(key).chunks(&data).map(|c| c.offset).collect() };
    let a = cuts(1);
    let b = cuts(2);
    assert_eq!(a, cuts(1), "keyed cuts must be deterministic");
    let shared = a.iter().filter(|o| b.contains(o)).count();
    // ~1000 cuts each; independent tables share only chance coincidences.
    assert!(
        shared < a.len() / 10,
        "{shared} of {} cut points shared",
        a.len()
    );
}

#[test]
fn empty_input_has_no_chunks() {
    let chunker = keyed(0);
    assert_eq!(chunker.chunks(&[]).count(), 0);
    assert_eq!(chunker.stream(std::io::empty()).count(), 0);
}

#[test]
fn all_zero_input_cuts_at_max() {
    let chunker = keyed(3);
    let data = vec![0u8; 3 * 4096 + 100];
    let sizes: Vec<usize> = chunker.chunks(&data).map(|c| c.length).collect();
    assert_eq!(sizes, vec![4096, 4096, 4096, 100]);
}

#[test]
fn reader_error_is_reported_once() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let mut stream = keyed(0).stream(Failing(100));
    let err = stream.next().unwrap().unwrap_err();
    assert!(err.to_string().contains("disk on fire"));
    assert!(stream.next().is_none());
}

#[test]
fn buffer_is_reused_when_chunks_are_dropped() {
    // Holding every chunk forces fresh buffers; dropping them must still give identical output.
    let data = noise(100_000, 9);
    let chunker = keyed(5);
    let held: Vec<_> = chunker.stream(&data[..]).map(|c| c.unwrap()).collect();
    let mut dropped = Vec::new();
    for chunk in chunker.stream(&data[..]) {
        let chunk = chunk.unwrap();
        dropped.push((chunk.offset, chunk.data.to_vec()));
    }
    let held: Vec<_> = held
        .into_iter()
        .map(|c| (c.offset, c.data.to_vec()))
        .collect();
    assert_eq!(held, dropped);
}

/// A producer that pauses (a pipe from `pg_dump`) must not have to fill the whole buffer
/// before the first chunk comes out: `max` bytes plus one read are enough.
#[test]
fn slow_producer_gets_chunks_after_max_bytes() {
    use std::cell::Cell;
    use std::rc::Rc;
    struct Counting {
        data: Vec<u8>,
        pos: usize,
        read: Rc<Cell<usize>>,
    }
    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = 1000.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            self.read.set(self.read.get() + n);
            Ok(n)
        }
    }
    let read = Rc::new(Cell::new(0));
    let chunker = keyed(4);
    let max = chunker.params().max();
    let mut stream = chunker.stream(Counting {
        data: noise(10 * max, 3),
        pos: 0,
        read: Rc::clone(&read),
    });
    stream.next().unwrap().unwrap();
    assert!(
        read.get() <= max + 1000,
        "read {} bytes before the first chunk",
        read.get()
    );
    let rest: usize = stream.map(|c| c.unwrap().data.len()).sum();
    assert!(rest > 0);
}

/// An edit of an input, for the guided chunking properties.
#[derive(Clone, Debug)]
enum Edit {
    Overwrite { at: usize, bytes: Vec<u8> },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { keep: usize },
    Append { bytes: Vec<u8> },
    Zero { at: usize, len: usize },
}

fn apply(data: &[u8], edit: &Edit) -> Vec<u8> {
    let mut out = data.to_vec();
    match edit {
        Edit::Overwrite { at, bytes } => {
            let at = (*at).min(out.len());
            let end = (at + bytes.len()).min(out.len());
            out[at..end].copy_from_slice(&bytes[..end - at]);
        }
        Edit::Insert { at, bytes } => {
            let at = (*at).min(out.len());
            out.splice(at..at, bytes.iter().copied());
        }
        Edit::Delete { at, len } => {
            let at = (*at).min(out.len());
            let end = (at + len).min(out.len());
            out.drain(at..end);
        }
        Edit::Truncate { keep } => out.truncate(*keep),
        Edit::Append { bytes } => out.extend_from_slice(bytes),
        Edit::Zero { at, len } => {
            let at = (*at).min(out.len());
            let end = (at + len).min(out.len());
            out[at..end].fill(0);
        }
    }
    out
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    let bytes = || prop::collection::vec(any::<u8>(), 1..3000);
    prop_oneof![
        (0usize..40_000, bytes()).prop_map(|(at, bytes)| Edit::Overwrite { at, bytes }),
        (0usize..40_000, bytes()).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (0usize..40_000, 1usize..5000).prop_map(|(at, len)| Edit::Delete { at, len }),
        (0usize..40_000).prop_map(|keep| Edit::Truncate { keep }),
        bytes().prop_map(|bytes| Edit::Append { bytes }),
        (0usize..40_000, 1usize..12_000).prop_map(|(at, len)| Edit::Zero { at, len }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Guided by the previous version's chunks (all but the last), the cuts are exactly the
    /// search's, whatever the edit; and in-place edits reuse every chunk before them.
    #[test]
    fn guided_chunking_cuts_exactly_where_the_search_does(
        len in 0usize..40_000,
        seed in any::<u64>(),
        zeros in prop::option::of((0usize..40_000, 1usize..12_000)),
        edit in edit_strategy(),
        key in any::<u8>(),
    ) {
        let chunker = keyed(key);
        let mut old = noise(len, seed);
        if let Some((at, n)) = zeros {
            old = apply(&old, &Edit::Zero { at, len: n });
        }
        let new = apply(&old, &edit);
        let mut previous: Vec<(Vec<u8>, usize)> = chunker
            .chunks(&old)
            .map(|c| (old[c.offset..c.offset + c.length].to_vec(), c.length))
            .collect();
        previous.pop();
        let guided: Vec<_> = cairn_chunker::Guided::new(
            chunker.stream(&new[..]),
            previous.clone(),
            |key: &Vec<u8>, bytes: &[u8]| key.as_slice() == bytes,
        )
        .map(|r| r.unwrap())
        .collect();
        let cuts: Vec<_> = guided.iter().map(|(c, _)| (c.offset as usize, c.data.len())).collect();
        let searched: Vec<_> = chunker.chunks(&new).map(|c| (c.offset, c.length)).collect();
        prop_assert_eq!(&cuts, &searched);
        if let Edit::Overwrite { at, .. } | Edit::Zero { at, .. } = edit {
            // Every previous chunk that ends before the edit is taken without a search.
            let mut end = 0;
            for (i, (_, length)) in previous.iter().enumerate() {
                end += length;
                if end > at {
                    break;
                }
                prop_assert!(guided[i].1.is_some(), "chunk {} ending at {} was searched", i, end);
            }
        }
    }

    /// A caller that confirms anything (a planted parent) still gets chunks that cover the
    /// input exactly, each within `max`.
    #[test]
    fn guided_chunking_covers_the_input_whatever_the_guide_claims(
        len in 0usize..30_000,
        seed in any::<u64>(),
        lengths in prop::collection::vec(0usize..10_000, 0..20),
    ) {
        let chunker = keyed(3);
        let data = noise(len, seed);
        let previous: Vec<((), usize)> = lengths.into_iter().map(|l| ((), l)).collect();
        let mut rebuilt = Vec::new();
        for chunk in cairn_chunker::Guided::new(chunker.stream(&data[..]), previous, |_: &(), _: &[u8]| true) {
            let (chunk, _) = chunk.unwrap();
            prop_assert_eq!(chunk.offset as usize, rebuilt.len());
            prop_assert!(!chunk.data.is_empty() && chunk.data.len() <= chunker.params().max());
            rebuilt.extend_from_slice(&chunk.data);
        }
        prop_assert_eq!(rebuilt, data);
    }
}
