//! `Repository::stats`: restore sizes count shared subtrees at every path and in every
//! snapshot; blob counts and stored sizes count each distinct blob once.

mod common;

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::{BlobType, Node, NodeKind, Repository, SnapshotFilter, Storage, Tree};
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn shared_subtrees_count_at_every_path_and_blobs_once() {
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let empty = repo.stats(&SnapshotFilter::default()).await.unwrap();
    assert_eq!(empty.snapshots_count, 0);
    assert_eq!(empty.total_size, 0);
    assert_eq!(empty.dedup_ratio, 0.0);

    for _ in 0..2 {
        repo.backup_built_tree(vec!["/".into()], BackupOptions::default(), |store| {
            let mut files = Vec::new();
            for (name, content) in [("x", &b"abc"[..]), ("y", b"hello")] {
                let mut file = Node::new(name, NodeKind::File);
                file.size = content.len() as u64;
                file.content = vec![store(BlobType::Data, content)?];
                files.push(file);
            }
            let shared = store(BlobType::Tree, &Tree { nodes: files }.encode()?)?;
            let dirs = ["a", "b"]
                .into_iter()
                .map(|name| Node {
                    subtree: Some(shared),
                    ..Node::new(name, NodeKind::Dir)
                })
                .collect();
            store(BlobType::Tree, &Tree { nodes: dirs }.encode()?)
        })
        .await
        .unwrap();
    }
    let stats = repo.stats(&SnapshotFilter::default()).await.unwrap();
    assert_eq!(stats.snapshots_count, 2);
    // 2 snapshots x 2 paths x (3 + 5 bytes, 2 files).
    assert_eq!(stats.total_size, 32);
    assert_eq!(stats.total_file_count, 8);
    // Root tree, shared tree, two data blobs: each once.
    assert_eq!(stats.total_blob_count, 4);
    assert!(stats.total_uncompressed_size > 8, "{stats:?}");
    assert!(stats.total_stored_size > 0 && stats.repository_size >= stats.total_stored_size);
    assert!(stats.pack_count >= 1);
    assert_eq!(
        stats.dedup_ratio,
        stats.total_size as f64 / stats.total_uncompressed_size as f64
    );

    let none = repo
        .stats(&SnapshotFilter {
            hosts: vec!["no-such-host".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (none.snapshots_count, none.total_size, none.total_blob_count),
        (0, 0, 0)
    );
    assert_eq!(
        none.pack_count, stats.pack_count,
        "the repository is counted whatever the filter"
    );
}
