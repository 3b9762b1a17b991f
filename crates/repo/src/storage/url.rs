//! Repository locations: URLs (`s3://`, `gs://`, `az://`, `file://`, `memory://`), plain
//! paths, and restic's `backend:…` syntax, so scripts written for restic work unchanged.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{Certificate, ClientOptions, ObjectStore};

use super::private_local;
use crate::error::{RepoError, Result};

/// A parsed repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    Local(std::path::PathBuf),
    Memory,
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
    },
    Gcs {
        bucket: String,
        prefix: String,
    },
    Azure {
        container: String,
        prefix: String,
    },
}

fn invalid(location: &str, reason: &str) -> RepoError {
    RepoError::InvalidInput(format!(
        "invalid repository location {location:?}: {reason}"
    ))
}

fn split_bucket(rest: &str, location: &str) -> Result<(String, String)> {
    let rest = rest.trim_start_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid(location, "no bucket or container name"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// restic's S3 form after `s3:`: `https://host[:port]/bucket[/prefix]` or
/// `host/bucket[/prefix]` (https implied); AWS's own host means no custom endpoint.
fn restic_s3(rest: &str, location: &str) -> Result<Location> {
    let (scheme, rest) = match rest.split_once("://") {
        Some((scheme, rest)) => (scheme.to_string(), rest),
        None => ("https".to_string(), rest),
    };
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| invalid(location, "expected s3:HOST/BUCKET[/PREFIX]"))?;
    let (bucket, prefix) = split_bucket(path, location)?;
    let endpoint = if host == "s3.amazonaws.com" {
        None
    } else {
        Some(format!("{scheme}://{host}"))
    };
    Ok(Location::S3 {
        bucket,
        prefix,
        endpoint,
    })
}

pub(crate) fn parse(location: &str) -> Result<Location> {
    if location.is_empty() {
        return Err(invalid(location, "empty"));
    }
    for unsupported in ["rest:", "sftp:", "rclone:", "b2:", "swift:"] {
        if location.starts_with(unsupported) {
            return Err(RepoError::InvalidInput(format!(
                "repository backend {:?} is not supported by cairn (use a local path, s3:, gs: or azure:)",
                unsupported.trim_end_matches(':')
            )));
        }
    }
    if location == "memory://" || location == "memory:" {
        return Ok(Location::Memory);
    }
    if let Some(path) = location
        .strip_prefix("file://")
        .or_else(|| location.strip_prefix("local:"))
    {
        return Ok(Location::Local(path.into()));
    }
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = split_bucket(rest, location)?;
        return Ok(Location::S3 {
            bucket,
            prefix,
            endpoint: None,
        });
    }
    if let Some(rest) = location.strip_prefix("s3:") {
        return restic_s3(rest, location);
    }
    if let Some(rest) = location.strip_prefix("gs://") {
        let (bucket, prefix) = split_bucket(rest, location)?;
        return Ok(Location::Gcs { bucket, prefix });
    }
    if let Some(rest) = location.strip_prefix("gs:") {
        let (bucket, prefix) = rest.split_once(':').unwrap_or((rest, ""));
        let (bucket, _) = split_bucket(bucket, location)?;
        return Ok(Location::Gcs {
            bucket,
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    for scheme in ["az://", "azure://", "abfs://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            let (container, prefix) = split_bucket(rest, location)?;
            return Ok(Location::Azure { container, prefix });
        }
    }
    if let Some(rest) = location.strip_prefix("azure:") {
        let (container, prefix) = rest.split_once(':').unwrap_or((rest, ""));
        let (container, _) = split_bucket(container, location)?;
        return Ok(Location::Azure {
            container,
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(invalid(location, &format!("unknown scheme {scheme:?}")));
    }
    Ok(Location::Local(location.into()))
}

/// Applies backend options (object_store config keys, any case) to a cloud store builder.
fn configure<B, K>(
    mut builder: B,
    options: &[(String, String)],
    set: impl Fn(B, K, &str) -> B,
) -> Result<B>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    for (key, value) in options {
        let parsed = key
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| RepoError::InvalidInput(format!("backend option {key:?}: {e}")))?;
        builder = set(builder, parsed, value);
    }
    Ok(builder)
}

/// The option naming a PEM file of extra root certificates to trust (restic's `--cacert`),
/// for stores behind a private CA (an in-cluster MinIO). Not an object_store key: cairn
/// handles it.
pub const CA_CERTIFICATE_OPTION: &str = "ca_certificate_file";

/// Backend options as (key, value) pairs.
type Settings = Vec<(String, String)>;

/// Splits the CA option off the rest; reads and parses its certificates.
fn split_ca(options: &[(String, String)]) -> Result<(Vec<Certificate>, Settings)> {
    let mut roots = Vec::new();
    let mut rest = Vec::new();
    for (key, value) in options {
        if key != CA_CERTIFICATE_OPTION {
            rest.push((key.clone(), value.clone()));
            continue;
        }
        let pem = std::fs::read(value).map_err(|e| RepoError::io(value, e))?;
        let certificates = Certificate::from_pem_bundle(&pem)
            .map_err(|e| RepoError::InvalidInput(format!("CA certificate file {value}: {e}")))?;
        if certificates.is_empty() {
            return Err(RepoError::InvalidInput(format!(
                "CA certificate file {value} holds no PEM certificate"
            )));
        }
        roots.extend(certificates);
    }
    Ok((roots, rest))
}

/// A builder configured from the environment variables starting with `prefix`, as the
/// builders' `from_env` does, but on top of `client` (so extra root certificates survive:
/// setting client options after `from_env` would drop the environment's client settings).
fn from_env_with_client<B, K>(
    builder: B,
    client: ClientOptions,
    prefix: &str,
    with_client: impl Fn(B, ClientOptions) -> B,
    set: impl Fn(B, K, &str) -> B,
) -> B
where
    K: std::str::FromStr,
{
    let mut builder = with_client(builder, client);
    for (key, value) in std::env::vars() {
        if key.starts_with(prefix) {
            if let Ok(parsed) = key.to_ascii_lowercase().parse() {
                builder = set(builder, parsed, &value);
            }
        }
    }
    builder
}

fn with_prefix(store: impl ObjectStore, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

/// Builds the object store a location names. Cloud stores take credentials, region and
/// endpoint from the usual environment (`AWS_*` including `AWS_ENDPOINT_URL` and
/// `AWS_ALLOW_HTTP`; `GOOGLE_*`; `AZURE_*`) and retry transient errors with exponential
/// backoff (object_store's defaults: up to 10 retries within 3 minutes).
///
/// A local directory must exist unless `create_local` is set (as `init` does).
pub fn parse_location(location: &str) -> Result<Arc<dyn ObjectStore>> {
    open_location(location, false, &[])
}

/// Like [`parse_location`], with extra backend options that override the environment, as
/// `object_store` config keys (`aws_access_key_id`, `aws_endpoint`, `aws_allow_http`,
/// `google_service_account`, `azure_storage_account_name`, ...).
pub(crate) fn open_location(
    location: &str,
    create_local: bool,
    options: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>> {
    let (roots, options) = split_ca(options)?;
    let client = roots
        .iter()
        .cloned()
        .fold(ClientOptions::new(), ClientOptions::with_root_certificate);
    // With a CA certificate the client must carry it, so builders start empty and take the
    // environment through `from_env_with_client`; otherwise `from_env` does it all.
    let remote = Remote {
        location,
        client: (!roots.is_empty()).then_some(client),
        options: &options,
    };
    match parse(location)? {
        Location::Memory => Ok(Arc::new(InMemory::new())),
        Location::Local(path) => open_local(location, path, create_local),
        Location::S3 {
            bucket,
            prefix,
            endpoint,
        } => remote.s3(bucket, prefix, endpoint),
        Location::Gcs { bucket, prefix } => remote.gcs(bucket, prefix),
        Location::Azure { container, prefix } => remote.azure(container, prefix),
    }
}

fn backend_error(location: &str) -> impl Fn(object_store::Error) -> RepoError + '_ {
    move |e| RepoError::Storage {
        object: location.to_string(),
        source: e,
    }
}

fn open_local(
    location: &str,
    path: std::path::PathBuf,
    create_local: bool,
) -> Result<Arc<dyn ObjectStore>> {
    let backend_error = backend_error(location);
    // Files 0600 and directories 0700 (restic's modes; see private_local.rs). A
    // repository directory `init` creates is 0700 too; one that exists already (a
    // mount point) keeps its mode, and what cairn creates inside it is private.
    if create_local {
        private_local::create_dirs(&path, private_local::Modes::PRIVATE.dir, true)
            .map_err(|e| RepoError::io(&path, e))?;
    } else if !path.is_dir() {
        return Err(RepoError::RepositoryNotFound {
            location: location.to_string(),
        });
    }
    // Durable before success, as a remote store's put is: a finished backup survives
    // a power loss, not just a killed process.
    let store = LocalFileSystem::new_with_prefix(&path)
        .map_err(backend_error)?
        .with_fsync(true);
    let modes = private_local::Modes::for_repository(&path);
    Ok(Arc::new(private_local::PrivateLocalStore::new(
        store, modes, true,
    )))
}

/// What every remote backend is opened with.
struct Remote<'a> {
    location: &'a str,
    /// A client carrying extra root certificates, if any were given.
    client: Option<ClientOptions>,
    options: &'a [(String, String)],
}

impl Remote<'_> {
    fn s3(
        &self,
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
    ) -> Result<Arc<dyn ObjectStore>> {
        let (backend_error, options) = (backend_error(self.location), self.options);
        let base = if self.client.is_none() {
            AmazonS3Builder::from_env()
        } else {
            from_env_with_client(
                AmazonS3Builder::new(),
                self.client.clone().unwrap_or_default(),
                "AWS_",
                |b, c| b.with_client_options(c),
                |b, k, v| b.with_config(k, v),
            )
        };
        let mut builder = configure(base.with_bucket_name(bucket), options, |b, k, v| {
            b.with_config(k, v)
        })?;
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(&endpoint);
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
        }
        Ok(with_prefix(
            builder.build().map_err(backend_error)?,
            &prefix,
        ))
    }

    fn gcs(&self, bucket: String, prefix: String) -> Result<Arc<dyn ObjectStore>> {
        let (backend_error, options) = (backend_error(self.location), self.options);
        let base = if self.client.is_none() {
            GoogleCloudStorageBuilder::from_env()
        } else {
            let mut base = from_env_with_client(
                GoogleCloudStorageBuilder::new(),
                self.client.clone().unwrap_or_default(),
                "GOOGLE_",
                |b, c| b.with_client_options(c),
                |b, k, v| b.with_config(k, v),
            );
            if let Ok(path) = std::env::var("SERVICE_ACCOUNT") {
                base = base.with_service_account_path(path);
            }
            base
        };
        let builder = base.with_bucket_name(bucket);
        let builder = configure(builder, options, |b, k, v| b.with_config(k, v))?;
        Ok(with_prefix(
            builder.build().map_err(backend_error)?,
            &prefix,
        ))
    }

    fn azure(&self, container: String, prefix: String) -> Result<Arc<dyn ObjectStore>> {
        let (backend_error, options) = (backend_error(self.location), self.options);
        let base = if self.client.is_none() {
            MicrosoftAzureBuilder::from_env()
        } else {
            from_env_with_client(
                MicrosoftAzureBuilder::new(),
                self.client.clone().unwrap_or_default(),
                "AZURE_",
                |b, c| b.with_client_options(c),
                |b, k, v| b.with_config(k, v),
            )
        };
        let builder = base.with_container_name(container);
        let builder = configure(builder, options, |b, k, v| b.with_config(k, v))?;
        Ok(with_prefix(
            builder.build().map_err(backend_error)?,
            &prefix,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_and_url_syntax() {
        let s3 = |bucket: &str, prefix: &str, endpoint: Option<&str>| Location::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: endpoint.map(String::from),
        };
        assert_eq!(
            parse("/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            parse("local:/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            parse("file:///srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(parse("s3://bkt/a/b").unwrap(), s3("bkt", "a/b", None));
        assert_eq!(
            parse("s3:s3.amazonaws.com/bkt/p").unwrap(),
            s3("bkt", "p", None)
        );
        assert_eq!(
            parse("s3:http://127.0.0.1:9000/bkt/p/q").unwrap(),
            s3("bkt", "p/q", Some("http://127.0.0.1:9000"))
        );
        assert_eq!(
            parse("s3:https://minio.example:9000/bkt").unwrap(),
            s3("bkt", "", Some("https://minio.example:9000"))
        );
        assert_eq!(
            parse("gs:bkt:/pre/fix").unwrap(),
            Location::Gcs {
                bucket: "bkt".into(),
                prefix: "pre/fix".into()
            }
        );
        assert_eq!(
            parse("gs://bkt/pre").unwrap(),
            Location::Gcs {
                bucket: "bkt".into(),
                prefix: "pre".into()
            }
        );
        assert_eq!(
            parse("azure:ctr:/p").unwrap(),
            Location::Azure {
                container: "ctr".into(),
                prefix: "p".into()
            }
        );
        assert_eq!(parse("memory://").unwrap(), Location::Memory);
    }

    #[test]
    fn unsupported_and_invalid() {
        for loc in [
            "rest:http://x/",
            "sftp:host:/p",
            "rclone:x:y",
            "b2:bucket:p",
            "swift:c:/p",
        ] {
            let err = parse(loc).unwrap_err().to_string();
            assert!(err.contains("not supported by cairn"), "{err}");
        }
        assert!(parse("s3://").is_err());
        assert!(parse("ftp://x")
            .unwrap_err()
            .to_string()
            .contains("unknown scheme"));
        assert!(parse("").is_err());
    }

    #[test]
    fn unknown_backend_option_is_named() {
        let options = [("no_such_key".to_string(), "x".to_string())];
        for location in ["s3://bkt/p", "gs://bkt/p", "az://ctr/p"] {
            let err = open_location(location, false, &options)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("backend option \"no_such_key\""),
                "{location}: {err}"
            );
        }
    }

    #[test]
    fn missing_local_directory_is_not_found() {
        let err = parse_location("/nonexistent/cairn/repo").unwrap_err();
        assert!(matches!(err, RepoError::RepositoryNotFound { .. }));
    }
}
