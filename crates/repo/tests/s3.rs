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

/// A private CA and a server certificate for 127.0.0.1 it signed (openssl), as an
/// in-cluster MinIO would have. Returns (CA certificate, server certificate, server key).
fn private_ca(dir: &std::path::Path) -> Option<[std::path::PathBuf; 3]> {
    let path = |name: &str| dir.join(name);
    let extensions = path("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let made = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=cairn test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]) && openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]) && openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    if !made {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_S3").is_none(),
            "CAIRN_REQUIRE_S3 is set but openssl cannot make test certificates"
        );
        eprintln!("skipped: openssl not available");
        return None;
    }
    Some([path("ca.pem"), path("server.pem"), path("server.key")])
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_behind_a_private_certificate_authority() {
    let dir = tempfile::tempdir().unwrap();
    let Some([ca, cert, key]) = private_ca(dir.path()) else {
        return;
    };
    let Some(server) = S3Server::start_tls(&cert, &key) else {
        return;
    };
    let made = std::process::Command::new("curl")
        .args(["-sf", "-X", "PUT", "--cacert"])
        .arg(&ca)
        .arg(format!("{}/cairn-tls", server.endpoint))
        .status()
        .unwrap();
    assert!(made.success(), "creating the bucket over TLS");
    let mut options: Vec<(String, String)> = server
        .options()
        .into_iter()
        .filter(|(k, _)| k != "aws_allow_http")
        .collect();
    // Untrusted: the store's certificate is refused.
    let storage = Storage::open_with_options("s3://cairn-tls/repo", false, &options).unwrap();
    let err = Repository::init(storage, PASSWORD, fast_init())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    // Trusted with the CA file: a full round trip.
    options.push((
        cairn_repo::storage::CA_CERTIFICATE_OPTION.into(),
        ca.display().to_string(),
    ));
    let storage = Storage::open_with_options("s3://cairn-tls/repo", false, &options).unwrap();
    let repo = Repository::init(storage, PASSWORD, fast_init())
        .await
        .unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("f"), noise(500_000, 9)).unwrap();
    repo.backup(std::slice::from_ref(&source), Default::default())
        .await
        .unwrap();
    assert_healthy(&repo).await;
    // A file that is not a certificate is refused, naming it.
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, b"not a certificate").unwrap();
    let bad = vec![(
        cairn_repo::storage::CA_CERTIFICATE_OPTION.to_string(),
        bogus.display().to_string(),
    )];
    let err = Storage::open_with_options("s3://cairn-tls/repo", false, &bad).unwrap_err();
    assert!(err.to_string().contains("bogus.pem"), "{err}");
}

/// The metadata cache over S3: a warm cache reads no index file, snapshot or tree; another
/// handle's backup is seen; a tampered tree pack is refetched.
#[tokio::test(flavor = "multi_thread")]
async fn the_metadata_cache_over_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("cairn-cache");
    let storage =
        Storage::open_with_options("s3://cairn-cache/repo", false, &server.options()).unwrap();
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    make_tree(&source);
    let cached = cairn_repo::OpenOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..Default::default()
    };
    let open = || Repository::open_with(storage.clone(), PASSWORD, &cached);
    let repo = open().await.unwrap();
    repo.backup(std::slice::from_ref(&source), Default::default())
        .await
        .unwrap();
    let restore = |repo: Repository, name: &'static str| {
        let target = dir.path().join(name);
        let source = source.clone();
        async move {
            repo.restore_spec("latest", &target, Default::default())
                .await
                .unwrap();
            assert_same_tree(
                &source,
                &target.join(source.strip_prefix("/").unwrap()),
                false,
            );
        }
    };
    restore(open().await.unwrap(), "cold").await;
    let before = storage.requests();
    restore(open().await.unwrap(), "warm").await;
    let made = storage.requests().since(&before);
    assert_eq!(made.gets(FileType::Index), 0, "{made:?}");
    assert_eq!(made.gets(FileType::Snapshot), 0, "{made:?}");

    // Another handle without a cache backs up again: the cached handle sees two snapshots.
    let plain = Repository::open(storage.clone(), PASSWORD).await.unwrap();
    plain
        .backup(std::slice::from_ref(&source), Default::default())
        .await
        .unwrap();
    let repo = open().await.unwrap();
    assert_eq!(
        repo.list_snapshots(&Default::default())
            .await
            .unwrap()
            .len(),
        2
    );

    // A damaged cached tree pack is detected and read again from the store.
    let trees = repo.cache().unwrap().dir().join("trees");
    for entry in std::fs::read_dir(&trees).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
    }
    restore(repo, "tampered").await;
}
