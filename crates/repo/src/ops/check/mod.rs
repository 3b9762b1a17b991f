//! `check`: is every snapshot restorable? Structure always (index files decode, every indexed
//! pack exists and its header agrees with the index, every snapshot's trees decode and every
//! blob they reference is indexed); with `read_data`, also every byte (each selected pack
//! hashes to its name and every blob in it authenticates, decompresses and matches its id).
//! Findings name the damaged object, the blobs in it, and the snapshots and files they break.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cairn_pack::{BlobId, BlobType, PackEntry, PackId, PackReader};
use futures::StreamExt;

use crate::cache::MetadataCache;
use crate::error::{RepoError, Result};
use crate::index::{tables, Index, IndexBuilder, IndexFile};
use crate::object::SnapshotId;
use crate::object::{check_content_id, object_name, SealedFile};
use crate::records::{CheckRecord, DrillRecord};
use crate::snapshot::Snapshot;
use crate::snapshot::SnapshotEntry;
use crate::tree::NodeKind;
use crate::walk::{child_path, TreeWalker};
use crate::Repository;

mod indexed;

use indexed::IndexedPacks;

/// Where check puts the index it builds: tables in its scratch cache, or the heap when it
/// has none.
enum IndexSink {
    Tables(tables::RunWriter, std::path::PathBuf),
    Heap(IndexBuilder),
}

/// Which packs to download and verify byte for byte.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ReadData {
    /// None: structure only.
    #[default]
    None,
    /// Every pack.
    All,
    /// Packs whose position in id order is `n - 1` modulo `m` (`--read-data-subset n/m`):
    /// running 1/m … m/m on successive days covers the repository.
    Subset {
        /// Which slice, 1-based.
        n: u32,
        /// Number of slices.
        m: u32,
    },
    /// A random share of the packs, in percent.
    Percent(f64),
}

impl ReadData {
    /// Parses restic's `--read-data-subset` forms `n/m` and `x%`.
    pub fn parse_subset(text: &str) -> Result<ReadData> {
        let bad = || {
            RepoError::InvalidInput(format!(
                "invalid --read-data-subset {text:?}: use n/m (1 ≤ n ≤ m) or x% (0 < x ≤ 100)"
            ))
        };
        if let Some(percent) = text.strip_suffix('%') {
            let value: f64 = percent.trim().parse().map_err(|_| bad())?;
            if !(value > 0.0 && value <= 100.0) {
                return Err(bad());
            }
            return Ok(ReadData::Percent(value));
        }
        let (n, m) = text.split_once('/').ok_or_else(bad)?;
        let (n, m): (u32, u32) = (
            n.trim().parse().map_err(|_| bad())?,
            m.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || m == 0 || n > m {
            return Err(bad());
        }
        Ok(ReadData::Subset { n, m })
    }

    fn selects(&self, position: usize, id: &PackId) -> bool {
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Subset { n, m } => position as u64 % m as u64 == (n - 1) as u64,
            ReadData::Percent(p) => {
                // Random per run, but decided per pack from fresh randomness and its id.
                let mut seed = [0u8; 8];
                let _ = cairn_pack::random_bytes(&mut seed);
                let mut hasher = blake3::Hasher::new();
                hasher.update(&seed);
                hasher.update(id.as_bytes());
                let draw = u64::from_le_bytes(
                    hasher.finalize().as_bytes()[..8]
                        .try_into()
                        .expect("8 bytes"),
                );
                (draw as f64 / u64::MAX as f64) * 100.0 < p
            }
        }
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A lock object that does not authenticate under its name (copied from another name,
    /// planted, or damaged). Prune ignores it and `unlock` removes it; it loses no data.
    LockInvalid {
        /// The lock's name under `locks/`.
        lock: String,
        /// What is wrong.
        reason: String,
    },
    /// A key file is not well-formed or does not hash to its name (the passwords it
    /// protects no longer open the repository).
    KeyFileDamaged {
        /// The key file's name.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A key file's KDF costs are below the floor for new keys: its password is cheaper to
    /// guess than the repository's policy allows, and the weakest key sets the repository's
    /// security. A warning (the key works); replace it with `key passwd` or `key add` +
    /// `key remove`.
    KeyWeak {
        /// The key file's name.
        file: String,
        /// Its Argon2 memory cost in KiB.
        memory_kib: u32,
        /// Its Argon2 passes.
        time_cost: u32,
    },
    /// A drill or check record could not be read, authenticated or decoded.
    RecordDamaged {
        /// The object, e.g. `drills/<id>`.
        object: String,
        /// What went wrong.
        reason: String,
    },
    /// An index file could not be read, authenticated or decoded.
    IndexFileDamaged {
        /// Index file id.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// A pack the index lists does not exist.
    PackMissing {
        /// The pack.
        pack: PackId,
        /// Blobs the index says it holds.
        blobs: Vec<BlobId>,
    },
    /// A pack's header could not be read or disagrees with the index.
    PackHeaderDamaged {
        /// The pack.
        pack: PackId,
        /// What went wrong.
        reason: String,
    },
    /// A pack's content does not hash to its name, or its header fails (read-data).
    PackDamaged {
        /// The pack.
        pack: PackId,
        /// What went wrong.
        reason: String,
    },
    /// A blob failed to authenticate, decompress or match its id (read-data).
    BlobDamaged {
        /// The pack holding it.
        pack: PackId,
        /// The blob.
        blob: BlobId,
        /// What went wrong.
        reason: String,
    },
    /// A pack exists that no index lists (left by an interrupted backup; prune removes it).
    /// Not an error.
    PackNotIndexed {
        /// The pack.
        pack: PackId,
    },
    /// A snapshot could not be read.
    SnapshotDamaged {
        /// Snapshot id.
        snapshot: SnapshotId,
        /// What went wrong.
        reason: String,
    },
    /// A tree could not be read or decoded.
    TreeDamaged {
        /// A snapshot using it.
        snapshot: SnapshotId,
        /// Path of the directory in that snapshot.
        path: String,
        /// The tree.
        tree: BlobId,
        /// What went wrong.
        reason: String,
    },
    /// A file's content blob is missing from the index or damaged.
    FileDamaged {
        /// A snapshot containing the file.
        snapshot: SnapshotId,
        /// Path of the file in that snapshot.
        path: String,
        /// The blob.
        blob: BlobId,
        /// Missing or damaged.
        reason: String,
    },
}

impl Finding {
    /// False only for findings that lose no data (unindexed packs, weak keys).
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            Finding::PackNotIndexed { .. } | Finding::LockInvalid { .. } | Finding::KeyWeak { .. }
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::LockInvalid { lock, reason } => write!(
                f,
                "lock locks/{lock} is not valid and is ignored (`cairn unlock` removes it): {reason}"
            ),
            Finding::KeyFileDamaged { file, reason } => {
                write!(f, "key file {file} is damaged: {reason}")
            }
            Finding::KeyWeak {
                file,
                memory_kib,
                time_cost,
            } => write!(
                f,
                "key {file} is weak: Argon2 {memory_kib} KiB × {time_cost} passes is below the floor for new keys ({} KiB and {} KiB·passes); replace it (key passwd, or key add then key remove)",
                cairn_pack::KdfParams::MIN_MEMORY_KIB,
                cairn_pack::KdfParams::MIN_WORK_KIB
            ),
            Finding::RecordDamaged { object, reason } => {
                write!(f, "record {object} is damaged: {reason}")
            }
            Finding::IndexFileDamaged { file, reason } => {
                write!(f, "index file {file} is damaged: {reason}")
            }
            Finding::PackMissing { pack, blobs } => {
                write!(f, "pack {pack} is missing ({} blobs)", blobs.len())
            }
            Finding::PackHeaderDamaged { pack, reason } => {
                write!(f, "pack {pack}: header: {reason}")
            }
            Finding::PackDamaged { pack, reason } => write!(f, "pack {pack} is damaged: {reason}"),
            Finding::BlobDamaged { pack, blob, reason } => {
                write!(f, "blob {blob} in pack {pack} is damaged: {reason}")
            }
            Finding::PackNotIndexed { pack } => {
                write!(f, "pack {pack} is not in any index (prune removes it)")
            }
            Finding::SnapshotDamaged { snapshot, reason } => {
                write!(f, "snapshot {snapshot} is damaged: {reason}")
            }
            Finding::TreeDamaged {
                snapshot,
                path,
                tree,
                reason,
            } => {
                write!(
                    f,
                    "snapshot {snapshot}: directory {path} (tree {tree}) is damaged: {reason}"
                )
            }
            Finding::FileDamaged {
                snapshot,
                path,
                blob,
                reason,
            } => {
                write!(
                    f,
                    "snapshot {snapshot}: file {path} is broken: blob {blob} {reason}"
                )
            }
        }
    }
}

/// What `check` found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Every problem, in the order found.
    pub findings: Vec<Finding>,
    /// Packs listed by the index.
    pub packs_indexed: u64,
    /// Packs downloaded and verified.
    pub packs_read: u64,
    /// Snapshots whose trees were walked.
    pub snapshots_checked: u64,
    /// Distinct trees decoded.
    pub trees_checked: u64,
}

impl CheckReport {
    /// True when no finding is an error.
    pub fn is_ok(&self) -> bool {
        !self.findings.iter().any(Finding::is_error)
    }

    /// [`Outcome::Damaged`] when a finding is an error, else success.
    pub fn outcome(&self) -> crate::Outcome {
        if self.is_ok() {
            crate::Outcome::Success
        } else {
            crate::Outcome::Damaged
        }
    }
}

/// Checking options. Deserializes from its JSON form ([`crate::ops::wire::CheckWire`]).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(try_from = "crate::ops::wire::CheckWire")]
pub struct CheckOptions {
    /// Which packs to read in full.
    pub read_data: ReadData,
}

impl ReadData {
    /// How a check record names it: `none`, `all`, `subset n/m` or `x%`.
    pub fn describe(&self) -> String {
        match self {
            ReadData::None => "none".into(),
            ReadData::All => "all".into(),
            ReadData::Subset { n, m } => format!("subset {n}/{m}"),
            ReadData::Percent(p) => format!("{p}%"),
        }
    }
}

impl Repository {
    /// Checks the repository and records the result (`checks/<id>`) for metrics and
    /// runbooks. Returns the report, and the record's id or why it could not be written (a
    /// read-only credential, say): the check's verdict stands either way.
    pub async fn check_and_record(
        &self,
        options: &CheckOptions,
    ) -> Result<(CheckReport, Result<String>)> {
        let time = chrono::Utc::now();
        let started = std::time::Instant::now();
        let report = self.check(options).await?;
        let errors = report.findings.iter().filter(|f| f.is_error()).count() as u64;
        let record = CheckRecord {
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ok: report.is_ok(),
            read_data: options.read_data.describe(),
            errors,
            warnings: report.findings.len() as u64 - errors,
            duration_seconds: started.elapsed().as_secs_f64(),
            hostname: crate::host::hostname(),
        };
        let id = self.write_record(&record).await.map(String::from);
        Ok((report, id))
    }

    /// Checks the repository; see the module documentation. Returns a report even when it
    /// finds damage; errors only when the check itself cannot run (storage unreachable).
    /// One function per phase, in this order.
    pub async fn check(&self, options: &CheckOptions) -> Result<CheckReport> {
        // What the store holds is judged, not what this host's cache remembers: the check
        // reads through a cache of its own, empty at the start and deleted at the end
        // (restic's check does the same), so each tree pack is fetched once, whole.
        let base = self
            .cache()
            .map(|c| c.dir().to_path_buf())
            .unwrap_or_else(std::env::temp_dir);
        let scratch = tempfile::Builder::new()
            .prefix("check-")
            .tempdir_in(&base)
            .ok();
        let repo = match &scratch {
            Some(dir) => self.with_cache(MetadataCache::open(
                dir.path().to_path_buf(),
                crate::cache::DEFAULT_CACHE_LIMIT,
            )),
            None => self.uncached(),
        };
        repo.check_store(options).await
    }

    async fn check_store(&self, options: &CheckOptions) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        self.check_keys(&mut report).await?;
        self.check_locks_and_records(&mut report).await?;
        let (index, indexed) = self.check_index_files(&mut report).await?;
        let damaged_blobs = self.check_packs(&indexed, options, &mut report).await?;
        self.check_snapshots(&index, &damaged_blobs, &mut report)
            .await?;
        Ok(report)
    }

    async fn check_keys(&self, report: &mut CheckReport) -> Result<()> {
        // 0. Key files: well-formed and named by their hash (the config was authenticated
        //    when the repository was opened), and not below the KDF floor (a warning).
        for (name, bytes) in self.key_files().await? {
            let object = format!("keys/{name}");
            let verdict = check_content_id(&object, &name, &bytes).and_then(|()| {
                cairn_pack::KeyFile::parse(&bytes)
                    .map_err(|source| RepoError::Pack { object, source })
            });
            match verdict {
                Ok(key_file) if key_file.params().is_weak() => {
                    report.findings.push(Finding::KeyWeak {
                        file: name,
                        memory_kib: key_file.params().memory_kib(),
                        time_cost: key_file.params().time_cost(),
                    })
                }
                Ok(_) => {}
                Err(e) => report.findings.push(Finding::KeyFileDamaged {
                    file: name,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(())
    }

    async fn check_locks_and_records(&self, report: &mut CheckReport) -> Result<()> {
        // Locks: each must authenticate under its own name. Listed by this host's clock:
        // staleness does not matter here, and check must not write (it may run read-only).
        for lock in self.list_locks_at(chrono::Utc::now()).await? {
            if let Some(reason) = lock.problem {
                report.findings.push(Finding::LockInvalid {
                    lock: lock.name,
                    reason,
                });
            }
        }

        // Drill and check records, which RPO and metrics trust.
        self.check_files::<DrillRecord>(report).await?;
        self.check_files::<CheckRecord>(report).await?;
        Ok(())
    }

    /// Returns the index built from the readable index files and each indexed pack's
    /// entries (the first index file listing a pack wins).
    ///
    /// Index files are read a batch at a time and not kept: with check's scratch cache the
    /// index is written as mapped tables and each pack's entries are spilled to a file, so
    /// memory does not grow with the number of blobs (docs/performance.md#scale).
    async fn check_index_files(
        &self,
        report: &mut CheckReport,
    ) -> Result<(Arc<Index>, IndexedPacks)> {
        // 1. Index files, each on its own, so a damaged one is reported and the rest used.
        let mut indexed = IndexedPacks::new(self.cache().map(|c| c.dir()))?;
        let key = Arc::new(crate::index::table::table_key(self.keys.data_key()));
        let mut sink = match self.cache().map(|c| c.index_table_dir()) {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| RepoError::io(&dir, e))?;
                IndexSink::Tables(tables::RunWriter::new(&dir, Arc::clone(&key)), dir)
            }
            None => IndexSink::Heap(IndexBuilder::default()),
        };
        let files = self.list_files_sized::<IndexFile>().await?;
        let budget = crate::access::INDEX_READ_BUDGET;
        for batch in self.read_batches(files, budget) {
            for (id, decoded) in self.read_these::<IndexFile>(batch).await {
                let file = match decoded {
                    Ok(file) => file,
                    // Replaced by a concurrent prune since the listing.
                    Err(RepoError::MissingObject { .. }) => continue,
                    Err(e @ RepoError::Storage { .. }) => return Err(e),
                    Err(e) => {
                        report.findings.push(Finding::IndexFileDamaged {
                            file: id.into(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                for pack in &file.packs {
                    indexed.add(pack.id, &pack.entries)?;
                }
                match &mut sink {
                    IndexSink::Tables(runs, _) => runs.add(id, &file).await?,
                    IndexSink::Heap(builder) => {
                        builder.add_file(&file)?;
                    }
                }
            }
        }
        let index = match sink {
            IndexSink::Tables(runs, dir) => {
                let built = runs.finish().await?;
                let tables =
                    tokio::task::spawn_blocking(move || tables::compact(&dir, &key, built))
                        .await
                        .map_err(RepoError::task("merging check's index tables"))??;
                // The walk looks up every blob: read slots rather than fault them in.
                Index::from_tables_read(tables)
            }
            IndexSink::Heap(builder) => builder.finish(),
        };
        report.packs_indexed = indexed.len() as u64;
        Ok((Arc::new(index), indexed))
    }

    /// Returns the blobs found damaged (or in damaged or missing packs), with why.
    async fn check_packs(
        &self,
        indexed: &IndexedPacks,
        options: &CheckOptions,
        report: &mut CheckReport,
    ) -> Result<HashMap<BlobId, String>> {
        // 2. Packs: existence, headers, and optionally every byte.
        let stored: HashMap<PackId, u64> = self
            .list_packs()
            .await?
            .into_iter()
            .map(|p| (p.id, p.size))
            .collect();
        let mut damaged_blobs: HashMap<BlobId, String> = HashMap::new();
        for id in indexed.ids().filter(|id| !stored.contains_key(id)) {
            let entries = indexed.entries(id)?;
            for entry in &entries {
                damaged_blobs.insert(entry.id, format!("is in missing pack {id}"));
            }
            report.findings.push(Finding::PackMissing {
                pack: *id,
                blobs: entries.iter().map(|e| e.id).collect(),
            });
        }
        for id in stored.keys().filter(|id| !indexed.contains(id)) {
            report.findings.push(Finding::PackNotIndexed { pack: *id });
        }
        // Entries are read back per pack as its check starts, so only the packs in flight
        // hold theirs.
        let present: Vec<(usize, PackId, u64)> = indexed
            .ids()
            .enumerate()
            .filter_map(|(position, id)| stored.get(id).map(|size| (position, *id, *size)))
            .collect();
        let results: Vec<Result<(Vec<Finding>, bool)>> = futures::stream::iter(present)
            .map(|(position, id, size)| {
                let read = options.read_data.selects(position, &id);
                async move {
                    let entries = indexed.entries(&id)?;
                    self.check_pack(id, &entries, size, read)
                        .await
                        .map(|f| (f, read))
                }
            })
            .buffer_unordered(self.transfer_concurrency().max(2))
            .collect()
            .await;
        for result in results {
            let (findings, read) = result?;
            report.packs_read += u64::from(read);
            for finding in findings {
                match &finding {
                    Finding::BlobDamaged { blob, reason, .. } => {
                        damaged_blobs.insert(*blob, format!("is damaged: {reason}"));
                    }
                    Finding::PackDamaged { pack, .. } | Finding::PackHeaderDamaged { pack, .. } => {
                        for entry in indexed.entries(pack)? {
                            damaged_blobs
                                .entry(entry.id)
                                .or_insert_with(|| format!("is in damaged pack {pack}"));
                        }
                    }
                    _ => {}
                }
                report.findings.push(finding);
            }
        }
        Ok(damaged_blobs)
    }

    async fn check_snapshots(
        &self,
        index: &Index,
        damaged_blobs: &HashMap<BlobId, String>,
        report: &mut CheckReport,
    ) -> Result<()> {
        // 3. Snapshots: every tree decodes, every blob is indexed and undamaged.
        let mut snapshots = Vec::new();
        for id in self.list_files::<Snapshot>().await? {
            match self.read_file::<Snapshot>(&id).await {
                Ok(snapshot) => snapshots.push(SnapshotEntry { id, snapshot }),
                Err(e @ RepoError::Storage { .. }) => return Err(e),
                Err(e) => report.findings.push(Finding::SnapshotDamaged {
                    snapshot: id,
                    reason: e.to_string(),
                }),
            }
        }
        // Snapshot by snapshot through one walker: a tree shared with an earlier snapshot was
        // checked there, so damage inside it is reported once, under the first snapshot
        // that uses it.
        let mut walker = TreeWalker::new(self, index).remembering_by_position();
        for entry in &snapshots {
            report.snapshots_checked += 1;
            let mut findings = Vec::new();
            let mut trees = 0u64;
            walker
                .walk([entry.snapshot.tree], |reached| {
                    trees += 1;
                    let tree = match reached.tree {
                        Ok(tree) => tree,
                        Err(e @ RepoError::Storage { .. }) => return Err(e),
                        Err(e) => {
                            findings.push(Finding::TreeDamaged {
                                snapshot: entry.id.clone(),
                                path: reached.path,
                                tree: reached.id,
                                reason: damaged_blobs
                                    .get(&reached.id)
                                    .cloned()
                                    .unwrap_or_else(|| e.to_string()),
                            });
                            return Ok(());
                        }
                    };
                    for node in tree.nodes.iter().filter(|n| n.kind == NodeKind::File) {
                        for blob in &node.content {
                            let reason = match damaged_blobs.get(blob) {
                                Some(reason) => Some(reason.clone()),
                                None if index
                                    .get(blob)
                                    .is_none_or(|l| l.entry.blob_type != BlobType::Data) =>
                                {
                                    Some("is not in the index".to_string())
                                }
                                None => None,
                            };
                            if let Some(reason) = reason {
                                findings.push(Finding::FileDamaged {
                                    snapshot: entry.id.clone(),
                                    path: child_path(&reached.path, node.name.display()),
                                    blob: *blob,
                                    reason,
                                });
                            }
                        }
                    }
                    Ok(())
                })
                .await?;
            report.trees_checked += trees;
            // Reads complete in any order; report in path order, the same on every run.
            findings.sort_by(|a, b| walk_path(a).cmp(walk_path(b)));
            report.findings.extend(findings);
        }
        Ok(())
    }

    /// Checks one present pack: its header against the index, and with `read_data` its hash
    /// and every blob.
    async fn check_pack(
        &self,
        id: PackId,
        indexed: &[PackEntry],
        size: u64,
        read_data: bool,
    ) -> Result<Vec<Finding>> {
        let mut findings = Vec::new();
        if read_data {
            let bytes = self.read_whole_pack(&id).await?;
            if PackId::of(&bytes) != id {
                findings.push(Finding::PackDamaged {
                    pack: id,
                    reason: "content does not hash to its name".into(),
                });
            }
            let repo = self.clone();
            let indexed = indexed.to_vec();
            let blob_findings = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                match PackReader::from_bytes(&repo.keys, &bytes) {
                    Err(e) => out.push(Finding::PackDamaged {
                        pack: id,
                        reason: format!("header: {e}"),
                    }),
                    Ok(header) if header != indexed => out.push(Finding::PackHeaderDamaged {
                        pack: id,
                        reason: "header disagrees with the index".into(),
                    }),
                    Ok(_) => {}
                }
                // Decode by the index's entries: those are what restores will use.
                for blob in repo.decode_entries(&id, &bytes, indexed) {
                    if let Err(e) = blob.plain {
                        let reason = match e {
                            RepoError::Pack { source, .. } => source.to_string(),
                            other => other.to_string(),
                        };
                        out.push(Finding::BlobDamaged {
                            pack: id,
                            blob: blob.entry.id,
                            reason,
                        });
                    }
                }
                out
            })
            .await
            .map_err(RepoError::task("check task"))?;
            findings.extend(blob_findings);
            return Ok(findings);
        }
        let header = match self.read_pack_header(&id, size).await {
            Err(e @ RepoError::Storage { .. }) => return Err(e),
            Err(RepoError::Pack { source, .. }) => Err(source.to_string()),
            Err(e) => Err(e.to_string()),
            Ok(header) => Ok(header),
        };
        match header {
            Err(reason) => findings.push(Finding::PackHeaderDamaged { pack: id, reason }),
            Ok(header) if header != indexed => findings.push(Finding::PackHeaderDamaged {
                pack: id,
                reason: "header disagrees with the index".into(),
            }),
            Ok(_) => {}
        }
        Ok(findings)
    }
}

/// The path a tree walk finding names.
fn walk_path(finding: &Finding) -> &str {
    match finding {
        Finding::TreeDamaged { path, .. } | Finding::FileDamaged { path, .. } => path,
        _ => "",
    }
}

impl Repository {
    /// Reads every file of one kind, reporting each that does not authenticate or decode as
    /// [`Finding::RecordDamaged`] (a file removed since the listing is skipped).
    async fn check_files<T: SealedFile>(&self, report: &mut CheckReport) -> Result<()> {
        let ids = self.list_files::<T>().await?;
        for (id, read) in self.read_these::<T>(ids).await {
            match read {
                Ok(_) | Err(RepoError::MissingObject { .. }) => {}
                Err(e @ RepoError::Storage { .. }) => return Err(e),
                Err(e) => report.findings.push(Finding::RecordDamaged {
                    object: object_name::<T>(&id),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_parsing_and_selection() {
        assert_eq!(
            ReadData::parse_subset("2/5").unwrap(),
            ReadData::Subset { n: 2, m: 5 }
        );
        assert_eq!(
            ReadData::parse_subset("10%").unwrap(),
            ReadData::Percent(10.0)
        );
        for bad in ["0/5", "6/5", "x", "0%", "101%", "1/0"] {
            assert!(ReadData::parse_subset(bad).is_err(), "{bad}");
        }
        let all: Vec<usize> = (0..10)
            .filter(|&p| ReadData::Subset { n: 2, m: 5 }.selects(p, &PackId([0; 32])))
            .collect();
        assert_eq!(all, vec![1, 6]);
        // Slices 1..=m cover every pack exactly once.
        for p in 0..20 {
            let hits = (1..=4)
                .filter(|&n| ReadData::Subset { n, m: 4 }.selects(p, &PackId([0; 32])))
                .count();
            assert_eq!(hits, 1);
        }
        assert!(ReadData::Percent(100.0).selects(0, &PackId([1; 32])));
    }
}
