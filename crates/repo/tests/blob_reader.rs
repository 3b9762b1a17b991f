//! The one blob reader: coalesced pack reads, and blocking reads served by the runtime with
//! read-ahead. Request counts come from the storage's own accounting.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cairn_repo::blobs::ReadAhead;
use cairn_repo::ops::restore::RestoreOptions;
use cairn_repo::{BlobId, BlobType, FileType, RepoError, Repository, Storage};
use common::{fast_init, noise, PASSWORD};

/// A repository holding one stream of a few MB (many chunks over several packs).
async fn repository() -> Repository {
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let data = noise(3 << 20, 7);
    repo.backup_stream(std::io::Cursor::new(data), "dump.bin", Default::default())
        .await
        .unwrap();
    repo
}

fn data_blobs(index: &cairn_repo::index::Index) -> Vec<BlobId> {
    index
        .iter()
        .filter(|l| l.entry.blob_type == BlobType::Data)
        .map(|l| l.entry.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reads_match_async_reads_and_read_ahead_fetches_each_blob_once() {
    let repo = repository().await;
    let index = repo.load_index().await.unwrap();
    let ids = data_blobs(&index);
    assert!(ids.len() > 20, "{} blobs", ids.len());
    let mut expected = Vec::new();
    for id in &ids {
        expected.push(repo.read_blob(&index, BlobType::Data, id).await.unwrap());
    }
    let before = repo.storage().requests();
    let blobs = ReadAhead::start(repo.clone(), Arc::clone(&index), 8);
    let got = {
        let ids = ids.clone();
        tokio::task::spawn_blocking(move || {
            blobs.prefetch(ids.iter().map(|id| (BlobType::Data, *id)));
            ids.iter()
                .map(|id| blobs.read(BlobType::Data, id).unwrap())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap()
    };
    assert_eq!(got, expected);
    let made = repo.storage().requests().since(&before);
    // Every blob was announced, then asked for: read ahead once and never again.
    assert_eq!(made.gets(FileType::Pack), ids.len() as u64, "{made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_blob_is_an_error_for_every_waiter() {
    let repo = repository().await;
    let index = repo.load_index().await.unwrap();
    let blobs = ReadAhead::start(repo.clone(), index, 4);
    let missing = BlobId([0x5a; 32]);
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let blobs = blobs.clone();
            tokio::task::spawn_blocking(move || blobs.read(BlobType::Data, &missing))
        })
        .collect();
    for waiter in waiters {
        match waiter.await.unwrap() {
            Err(RepoError::MissingObject { object }) => {
                assert!(object.contains(&missing.to_hex()), "{object}")
            }
            other => panic!("expected a missing object, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packs_blobs_are_read_in_one_request_and_decode_as_read_blob_does() {
    let repo = repository().await;
    let index = repo.load_index().await.unwrap();
    let mut per_pack: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for location in index.iter() {
        per_pack
            .entry(location.pack)
            .or_default()
            .push(location.entry);
    }
    let (pack, entries) = per_pack.into_iter().max_by_key(|(_, e)| e.len()).unwrap();
    assert!(entries.len() > 1);
    let got = Arc::new(Mutex::new(BTreeMap::new()));
    let before = repo.storage().requests();
    {
        let got = Arc::clone(&got);
        let wanted = entries.iter().map(|e| (*e, e.id)).collect();
        repo.read_pack_blobs(pack, wanted, move |blob| {
            got.lock().unwrap().insert(blob.tag, blob.plain?);
            Ok(())
        })
        .await
        .unwrap();
    }
    let made = repo.storage().requests().since(&before);
    assert_eq!(made.gets(FileType::Pack), 1, "{made:?}");
    let got = std::mem::take(&mut *got.lock().unwrap());
    assert_eq!(got.len(), entries.len());
    for entry in &entries {
        let one = repo
            .read_blob(&index, entry.blob_type, &entry.id)
            .await
            .unwrap();
        assert_eq!(got[&entry.id], one);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_reads_each_pack_in_one_request() {
    let repo = repository().await;
    let packs = repo.storage().list(FileType::Pack).await.unwrap().len() as u64;
    let target = tempfile::tempdir().unwrap();
    let before = repo.storage().requests();
    repo.restore_spec("latest", target.path(), RestoreOptions::default())
        .await
        .unwrap();
    let made = repo.storage().requests().since(&before);
    // Data reads are coalesced per pack; one more read per tree (here: one tree).
    assert!(
        made.gets(FileType::Pack) <= packs + 1,
        "{packs} packs: {made:?}"
    );
    assert_eq!(
        std::fs::read(target.path().join("dump.bin")).unwrap(),
        noise(3 << 20, 7)
    );
}
