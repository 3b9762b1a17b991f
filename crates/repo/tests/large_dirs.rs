//! Split trees end to end: a directory larger than one tree is stored as parts and a part
//! list, and every reader (restore with `--delete`, path lookup, tar dump, check, stats,
//! copy, the parent comparison of the next backup) reads it part by part; hostile part
//! lists are refused naming the list.

mod common;

use std::path::Path;
use std::sync::Arc;

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::copy::CopyOptions;
use cairn_repo::ops::restore::RestoreOptions;
use cairn_repo::tree::{Part, PartList, TreeBlob, SINGLE_MAX};
use cairn_repo::{BlobType, ErrorKind, Node, NodeKind, Repository, Storage, Tree};
use common::*;

/// More entries than one tree holds, so the directory is split into several parts.
const ENTRIES: usize = 3 * SINGLE_MAX;

fn make_big_dir(root: &Path) {
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..ENTRIES {
        std::fs::write(big.join(format!("f{i:06}")), format!("content {i}")).unwrap();
    }
    // A subdirectory in the middle of the split directory.
    std::fs::create_dir(big.join("f005000.d")).unwrap();
    std::fs::write(big.join("f005000.d/inner"), b"inner").unwrap();
    std::fs::write(root.join("small"), b"small").unwrap();
}

/// The split directory `big` of `source` in `snapshot`: its tree id and part list.
async fn big_subtree(
    repo: &Repository,
    snapshot: &cairn_repo::Snapshot,
    source: &Path,
) -> (cairn_repo::BlobId, PartList) {
    let index = repo.load_index().await.unwrap();
    let big = repo
        .find_node(&index, snapshot, source.join("big").to_str().unwrap())
        .await
        .unwrap();
    let id = big.subtree.unwrap();
    match repo.read_tree_blob(&index, &id).await.unwrap() {
        TreeBlob::Parts(list) => (id, list),
        TreeBlob::Nodes(_) => panic!("{ENTRIES} entries are split"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_directory_is_split_and_every_reader_streams_it() {
    let source = tempfile::tempdir().unwrap();
    make_big_dir(source.path());
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let options = || BackupOptions {
        hostname: Some("h".into()),
        ..Default::default()
    };
    let first = repo
        .backup(&[source.path().to_path_buf()], options())
        .await
        .unwrap();
    let (_, list) = big_subtree(&repo, &first.snapshot, source.path()).await;
    assert!(list.parts.len() >= 3, "{} parts", list.parts.len());
    assert_eq!(list.entries(), ENTRIES as u64 + 1);

    // Restore (into a target holding an extra file in the split directory, with --delete).
    let target = tempfile::tempdir().unwrap();
    let rel = source.path().strip_prefix("/").unwrap();
    let restored_big = target.path().join(rel).join("big");
    std::fs::create_dir_all(&restored_big).unwrap();
    std::fs::write(restored_big.join("zz-extra"), b"x").unwrap();
    std::fs::write(restored_big.join("f000001"), b"stale").unwrap();
    let index = repo.load_index().await.unwrap();
    let restored = repo
        .restore(
            Arc::clone(&index),
            &first.snapshot,
            target.path(),
            RestoreOptions {
                delete: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(restored.errors.is_empty(), "{:?}", restored.errors);
    assert_eq!(restored.deleted, 1);
    assert_same_tree(source.path(), &target.path().join(rel), false);

    // Path lookup reads the one part that holds the name.
    let path = |name: &str| source.path().join(name).to_str().unwrap().to_string();
    let node = repo
        .find_node(&index, &first.snapshot, &path("big/f009999"))
        .await
        .unwrap();
    assert_eq!(node.size, "content 9999".len() as u64);
    assert!(repo
        .find_node(&index, &first.snapshot, &path("big/f999999"))
        .await
        .is_err());

    // A tar of the split directory holds every entry, in name order.
    let big_id = big_subtree(&repo, &first.snapshot, source.path()).await.0;
    let out = SharedBuffer::default();
    repo.dump_tar(Arc::clone(&index), big_id, "big".into(), out.clone())
        .await
        .unwrap();
    let bytes = out.0.lock().unwrap().clone();
    let names: Vec<String> = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), ENTRIES + 2);
    assert_eq!(names[0], "big/f000000");

    assert_healthy(&repo).await;
    let stats = repo.stats(&Default::default()).await.unwrap();
    assert_eq!(stats.total_file_count, ENTRIES as u64 + 2);

    // Unchanged: every file is matched in the parent's parts, the tree is the same.
    let again = repo
        .backup(&[source.path().to_path_buf()], options())
        .await
        .unwrap();
    let summary = again.snapshot.summary.clone().unwrap();
    assert_eq!(summary.files_unmodified, ENTRIES as u64 + 2);
    // (Not the root: /tmp above it changes as other tests make directories there.)
    assert_eq!(
        big_subtree(&repo, &again.snapshot, source.path()).await.0,
        big_id
    );

    // One new entry rewrites one part, the part list and the trees above it.
    std::fs::write(source.path().join("big/f004000x"), b"new").unwrap();
    let changed = repo
        .backup(&[source.path().to_path_buf()], options())
        .await
        .unwrap();
    let summary = changed.snapshot.summary.clone().unwrap();
    assert_eq!(summary.files_new, 1);
    assert_eq!(summary.files_unmodified, ENTRIES as u64 + 2);
    let (_, new_list) = big_subtree(&repo, &changed.snapshot, source.path()).await;
    let rewritten = new_list
        .parts
        .iter()
        .filter(|p| !list.parts.contains(p))
        .count();
    assert_eq!(rewritten, 1, "{:?}", new_list.parts);
    // The part list, the one part, and the directories above it up to the root.
    let depth = source.path().components().count() as u64;
    assert!(
        summary.tree_blobs <= depth + 2,
        "{} tree blobs",
        summary.tree_blobs
    );

    // Copy re-cuts the directory with the destination's key; it restores the same.
    let dest = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    repo.copy_snapshots(&dest, &CopyOptions::default())
        .await
        .unwrap();
    assert_healthy(&dest).await;
    let copied = dest
        .find_snapshot("latest", &Default::default())
        .await
        .unwrap();
    let (_, copied_list) = big_subtree(&dest, &copied.snapshot, source.path()).await;
    assert_eq!(copied_list.entries(), ENTRIES as u64 + 2);
    let target = tempfile::tempdir().unwrap();
    dest.restore(
        dest.load_index().await.unwrap(),
        &copied.snapshot,
        target.path(),
        RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_same_tree(source.path(), &target.path().join(rel), false);
}

/// A snapshot whose root is a part list built by hand: `parts` as the list says them,
/// `actual` the nodes each part really holds.
async fn built_split_snapshot(
    repo: &Repository,
    claimed: impl Fn(usize, &Tree, cairn_repo::BlobId) -> Part + Send + 'static,
) -> cairn_repo::Snapshot {
    repo.backup_built_tree(vec!["/x".into()], BackupOptions::default(), move |store| {
        let mut parts = Vec::new();
        for p in 0..2 {
            let nodes: Vec<Node> = (0..3)
                .map(|i| Node::new(format!("p{p}-{i}").into_bytes(), NodeKind::Fifo))
                .collect();
            let tree = Tree { nodes };
            let id = store(BlobType::Tree, &tree.clone().encode()?)?;
            parts.push(claimed(p, &tree, id));
        }
        store(BlobType::Tree, &PartList { parts }.encode())
    })
    .await
    .unwrap()
    .snapshot
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_part_lists_are_refused_naming_the_list() {
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let honest = |_: usize, tree: &Tree, id| Part {
        first: tree.nodes[0].name.clone(),
        count: tree.nodes.len() as u64,
        tree: id,
    };
    // An honest hand-built split root restores.
    let snapshot = built_split_snapshot(&repo, honest).await;
    let target = tempfile::tempdir().unwrap();
    let index = repo.load_index().await.unwrap();
    repo.restore(
        Arc::clone(&index),
        &snapshot,
        target.path(),
        RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert!(target.path().join("p1-2").exists());

    // A list that miscounts a part's nodes: restore and check name the list.
    let lying = built_split_snapshot(&repo, move |p, tree, id| Part {
        count: if p == 1 { 2 } else { 3 },
        ..honest(p, tree, id)
    })
    .await;
    let index = repo.load_index().await.unwrap();
    let target = tempfile::tempdir().unwrap();
    let err = repo
        .restore(index, &lying, target.path(), RestoreOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains(&lying.tree.to_string()), "{err}");
    let report = repo.check(&Default::default()).await.unwrap();
    assert!(!report.is_ok());
    assert!(
        format!("{:?}", report.findings).contains("holds 3 nodes, the list says 2"),
        "{:?}",
        report.findings
    );
}
