//! The same round trip against a real S3-compatible server (moto, started on loopback by this
//! test), plus conditional creates: what production object storage will do.

mod common;

use cairn_repo::{ErrorKind, FileType, Repository, Storage};
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn s3_compatible_server() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("cairn-test");
    let options = server.options();

    let storage = Storage::open_with_options("s3://cairn-test/repo-a", false, &options).unwrap();
    roundtrip(storage.clone()).await;

    // Conditional create is honoured: a second init fails, a second create of an object
    // returns "already there" without overwriting.
    let err = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyInitialized);
    let name = "ab".repeat(32);
    assert!(storage
        .create(
            FileType::Lock,
            &name,
            bytes::Bytes::from_static(b"one").into()
        )
        .await
        .unwrap());
    assert!(!storage
        .create(
            FileType::Lock,
            &name,
            bytes::Bytes::from_static(b"two").into()
        )
        .await
        .unwrap());
    assert_eq!(
        &storage.get(FileType::Lock, &name).await.unwrap()[..],
        b"one"
    );

    // restic's s3: syntax with an explicit endpoint, and a prefix that is not yet a repository.
    let restic_style = format!("s3:{}/cairn-test/repo-b", server.endpoint);
    let storage_b = Storage::open_with_options(&restic_style, false, &options).unwrap();
    let err = Repository::open(storage_b, PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RepositoryNotFound);
}
