//! With the canonical gear table, cairn's chunker must cut exactly where the `fastcdc` crate's
//! `v2020::FastCDC` cuts, through both the slice and the streaming API, on real files.

use std::io::Read;
use std::path::{Path, PathBuf};

use cairn_chunker::{Chunker, ChunkerParams, GearTable};
use fastcdc::v2020::FastCDC;

/// Regular files under a few system directories, largest first, so the inputs are real and
/// varied (binaries, text, compressed data) and present on every machine this runs on.
fn real_files(limit: usize, min_size: u64) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = ["/usr/bin", "/usr/lib", "/usr/share"]
        .iter()
        .map(PathBuf::from)
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && meta.len() >= min_size {
                found.push((meta.len(), entry.path()));
            }
        }
        if found.len() > 20 * limit {
            break;
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.into_iter().take(limit).map(|(_, p)| p).collect()
}

fn expected_cuts(data: &[u8], p: ChunkerParams) -> Vec<(usize, usize)> {
    FastCDC::new(data, p.min(), p.avg(), p.max())
        .map(|c| (c.offset, c.length))
        .collect()
}

/// A reader that returns at most `step` bytes per call and sometimes `Interrupted`.
struct Jittery {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    calls: usize,
}

impl Jittery {
    fn new(data: &[u8], step: usize) -> Self {
        Jittery {
            data: data.to_vec(),
            pos: 0,
            step,
            calls: 0,
        }
    }
}

impl Read for Jittery {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls % 7 == 3 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn check_file(path: &Path, params: &[ChunkerParams]) {
    let data = std::fs::read(path).unwrap();
    for &p in params {
        let expected = expected_cuts(&data, p);
        let chunker = Chunker::with_table(p, GearTable::canonical());
        let slice: Vec<_> = chunker
            .chunks(&data)
            .map(|c| (c.offset, c.length))
            .collect();
        assert_eq!(slice, expected, "slice API, {} {p:?}", path.display());
        for step in [usize::MAX, 65_536, 4_093] {
            let reader = Jittery::new(&data, step);
            let streamed: Vec<_> = chunker
                .stream(reader)
                .map(|c| {
                    let c = c.unwrap();
                    let offset = c.offset as usize;
                    assert_eq!(&c.data[..], &data[offset..offset + c.data.len()]);
                    (offset, c.data.len())
                })
                .collect();
            assert_eq!(
                streamed,
                expected,
                "stream API step {step}, {} {p:?}",
                path.display()
            );
        }
    }
}

#[test]
fn agrees_with_fastcdc_on_real_files_default_params() {
    let files = real_files(6, 4 << 20);
    assert!(!files.is_empty(), "no files of 4 MiB or more under /usr");
    for path in &files {
        check_file(path, &[ChunkerParams::DEFAULT]);
    }
}

#[test]
fn agrees_with_fastcdc_on_real_files_small_params() {
    let files = real_files(12, 256 << 10);
    assert!(files.len() >= 4, "too few real files found");
    let params = [
        ChunkerParams::new(4096, 16384, 65534).unwrap(),
        ChunkerParams::new(64, 256, 1024).unwrap(),
        ChunkerParams::new(8192, 32768, 131072).unwrap(),
    ];
    for path in &files {
        check_file(path, &params);
    }
}

/// The one-byte-at-a-time reader on a real file: slow, so a single small file.
#[test]
fn one_byte_reads_agree() {
    let files = real_files(200, 64 << 10);
    let path = files.last().expect("a real file");
    let data = std::fs::read(path).unwrap();
    let data = &data[..data.len().min(300_000)];
    let p = ChunkerParams::new(4096, 16384, 65534).unwrap();
    let chunker = Chunker::with_table(p, GearTable::canonical());
    let reader = Jittery::new(data, 1);
    let streamed: Vec<_> = chunker
        .stream(reader)
        .map(|c| {
            let c = c.unwrap();
            (c.offset as usize, c.data.len())
        })
        .collect();
    assert_eq!(streamed, expected_cuts(data, p));
}

/// The `fastcdc` crate's own golden vectors for its SekienAkashita.jpg fixture. The image is
/// not redistributed with cairn; point `CAIRN_SEKIEN_FIXTURE` at a copy to run this.
#[test]
fn sekien_akashita_fixture_sizes() {
    let Ok(path) = std::env::var("CAIRN_SEKIEN_FIXTURE") else {
        eprintln!(
            "skipped: set CAIRN_SEKIEN_FIXTURE to fastcdc-rs's test/fixtures/SekienAkashita.jpg"
        );
        return;
    };
    let data = std::fs::read(path).unwrap();
    let cases: [(usize, usize, usize, &[usize]); 3] = [
        (4096, 16384, 65534, &[21325, 17140, 28084, 18217, 24700]),
        (8192, 32768, 131072, &[66549, 42917]),
        (16384, 65536, 262144, &[109466]),
    ];
    for (min, avg, max, sizes) in cases {
        let chunker = Chunker::with_table(
            ChunkerParams::new(min, avg, max).unwrap(),
            GearTable::canonical(),
        );
        let got: Vec<usize> = chunker.chunks(&data).map(|c| c.length).collect();
        assert_eq!(got, sizes, "{min}/{avg}/{max}");
        let streamed: Vec<usize> = chunker
            .stream(&data[..])
            .map(|c| c.unwrap().data.len())
            .collect();
        assert_eq!(streamed, sizes, "stream {min}/{avg}/{max}");
    }
}
