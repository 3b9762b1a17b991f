//! `cairn pack-demo`: the foundation's path end to end, without a repository.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use cairn_chunker::{Chunker, ChunkerParams, ChunkerSecret};
use cairn_pack::{
    decode_blob, BlobEncoder, BlobId, BlobType, MasterKeys, PackEntry, PackReader, PackWriter,
    DEFAULT_PACK_SIZE,
};

pub fn run(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let keys = MasterKeys::generate()?;
    let chunker = Chunker::new(
        ChunkerParams::DEFAULT,
        &ChunkerSecret::from_bytes(*keys.chunker_secret()),
    );
    let encoder = BlobEncoder::new(Some(3))?;
    let mut files = Vec::new();
    collect(root, &mut files).with_context(|| format!("walking {}", root.display()))?;

    // file -> list of blob ids; blob id -> (pack index, entry)
    let mut recipes: Vec<(PathBuf, Vec<BlobId>)> = Vec::new();
    let mut seen: HashMap<BlobId, ()> = HashMap::new();
    let mut writer = PackWriter::new(DEFAULT_PACK_SIZE)?;
    let mut packs = Vec::new();
    let (mut bytes_in, mut chunks, mut unique) = (0u64, 0u64, 0u64);
    for path in &files {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut ids = Vec::new();
        for chunk in chunker.stream(file) {
            let chunk = chunk.with_context(|| format!("reading {}", path.display()))?;
            bytes_in += chunk.data.len() as u64;
            chunks += 1;
            let id = keys.blob_id(&chunk.data);
            ids.push(id);
            if seen.insert(id, ()).is_none() {
                unique += 1;
                writer.add(encoder.encode_with_id(&keys, BlobType::Data, id, &chunk.data)?)?;
                if writer.is_full() {
                    let full = std::mem::replace(&mut writer, PackWriter::new(DEFAULT_PACK_SIZE)?);
                    packs.push(full.finish(&keys)?.to_vec());
                }
            }
        }
        recipes.push((path.clone(), ids));
    }
    if !writer.is_empty() {
        packs.push(writer.finish(&keys)?.to_vec());
    }
    let stored: u64 = packs.iter().map(|p| p.len() as u64).sum();

    let mut index: HashMap<BlobId, (usize, PackEntry)> = HashMap::new();
    for (n, pack) in packs.iter().enumerate() {
        for entry in PackReader::from_bytes(&keys, pack)? {
            index.insert(entry.id, (n, entry));
        }
    }
    for (path, ids) in &recipes {
        let original =
            std::fs::read(path).with_context(|| format!("re-reading {}", path.display()))?;
        let mut rebuilt = Vec::with_capacity(original.len());
        for id in ids {
            let (n, entry) = index
                .get(id)
                .with_context(|| format!("blob {id} missing from every pack"))?;
            rebuilt.extend(decode_blob(
                &keys,
                entry,
                PackReader::blob_bytes(&packs[*n], entry)?,
            )?);
        }
        if rebuilt != original {
            bail!("{} did not reassemble byte for byte", path.display());
        }
    }
    println!(
        "{} files, {} bytes in {} chunks ({} unique) -> {} packs, {} bytes stored ({:.1}%); all files verified in {:.2?}",
        files.len(),
        bytes_in,
        chunks,
        unique,
        packs.len(),
        stored,
        100.0 * stored as f64 / bytes_in.max(1) as f64,
        started.elapsed()
    );
    Ok(())
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = path.symlink_metadata()?;
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            collect(&entry.path(), out)?;
        }
    }
    Ok(())
}
