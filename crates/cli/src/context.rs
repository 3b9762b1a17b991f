//! Global flags, repository and password resolution, exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context};
use cairn_repo::{OpenOptions, Outcome, RepoError, Repository, Storage};
use zeroize::Zeroizing;

/// A password as read: wiped from memory when dropped.
pub type Password = Zeroizing<Vec<u8>>;

/// Environment variables, shown under `--help`.
pub const ENV_HELP: &str = "\
Environment:
  CAIRN_REPOSITORY, CAIRN_REPOSITORY_FILE      repository location (or RESTIC_REPOSITORY[_FILE])
  CAIRN_PASSWORD, CAIRN_PASSWORD_FILE,         password (or RESTIC_PASSWORD[_FILE|_COMMAND]);
  CAIRN_PASSWORD_COMMAND                        prompted for on a terminal when none is set
  CAIRN_KEY_HINT                               key to try first (or RESTIC_KEY_HINT)
  CAIRN_CACHE_DIR                              cache directory (or RESTIC_CACHE_DIR; else
                                               $XDG_CACHE_HOME/cairn, else ~/.cache/cairn):
                                               index files, snapshots and tree packs of each
                                               repository, and which key opened it
  AWS_*, GOOGLE_*, AZURE_*                     object storage credentials and endpoints

Exit codes: 0 ok, 1 error (check: damage found), 3 incomplete (backup: snapshot written but
some source data unreadable; restore: some entries failed; forget: some snapshots not
removed), 10 repository does not exist, 11 repository locked, 12 wrong password,
25 RPO breached (rpo), 26 drill failed (drill; recorded), 130 interrupted.";

/// Which environment variables would supply the repository and the password right now
/// (names only, never values), for `--help`.
pub fn env_in_use() -> String {
    let repository = env_first(&[
        "CAIRN_REPOSITORY",
        "RESTIC_REPOSITORY",
        "CAIRN_REPOSITORY_FILE",
        "RESTIC_REPOSITORY_FILE",
    ]);
    let password = env_first(&[
        "CAIRN_PASSWORD",
        "RESTIC_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "RESTIC_PASSWORD_FILE",
        "CAIRN_PASSWORD_COMMAND",
        "RESTIC_PASSWORD_COMMAND",
    ]);
    let name = |found: Option<(String, String)>| {
        found.map_or_else(|| "none set".to_string(), |(name, _)| name)
    };
    format!(
        "In this environment (flags take precedence): repository from {}; password from {}.",
        name(repository),
        name(password)
    )
}

/// Flags every command accepts.
#[derive(clap::Args, Debug, Clone)]
pub struct Globals {
    /// Repository location: a path, file://, s3://, gs://, az:// or restic's syntax.
    #[arg(short = 'r', long = "repo", global = true)]
    pub repo: Option<String>,
    /// File holding the repository location.
    #[arg(long, global = true)]
    pub repository_file: Option<PathBuf>,
    /// File holding the password.
    #[arg(long, global = true)]
    pub password_file: Option<PathBuf>,
    /// Command printing the password.
    #[arg(long, global = true)]
    pub password_command: Option<String>,
    /// Machine-readable output on stdout (JSON).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More output.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Accepted for compatibility: reading needs no lock in cairn.
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// Backend option key=value (repeatable): restic's s3.region, s3.bucket-lookup, ...,
    /// or object_store keys such as aws_endpoint. restic options cairn ignores are warned
    /// about.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// PEM file of root certificates to trust besides the system's (a private CA).
    #[arg(long = "cacert", global = true, value_name = "FILE")]
    pub cacerts: Vec<PathBuf>,
    /// Key id (or unique prefix) to try first when opening the repository (or CAIRN_KEY_HINT
    /// / RESTIC_KEY_HINT). At most 20 key files are tried per open, so a repository with
    /// more keys needs it the first time on a host; then the key that opened is remembered.
    #[arg(long, global = true, value_name = "ID")]
    pub key_hint: Option<String>,
    /// Cache directory (or CAIRN_CACHE_DIR / RESTIC_CACHE_DIR; default
    /// $XDG_CACHE_HOME/cairn or ~/.cache/cairn): each repository's index files, snapshots
    /// and tree packs (authenticated on every use), and which key last opened it.
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use no cache directory: fetch all metadata from the repository, remember nothing.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Remove the caches of repositories no run here has used for 30 days.
    #[arg(long, global = true)]
    pub cleanup_cache: bool,
}

fn env_first(names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| (n.to_string(), v))
    })
}

impl Globals {
    /// The repository location from flags, then `CAIRN_*`, then `RESTIC_*`.
    pub fn location(&self) -> anyhow::Result<String> {
        if let Some(repo) = &self.repo {
            return Ok(repo.clone());
        }
        if let Some(file) = &self.repository_file {
            return read_first_line(file);
        }
        if let Some((_, value)) = env_first(&["CAIRN_REPOSITORY", "RESTIC_REPOSITORY"]) {
            return Ok(value);
        }
        if let Some((_, file)) = env_first(&["CAIRN_REPOSITORY_FILE", "RESTIC_REPOSITORY_FILE"]) {
            return read_first_line(file.as_ref());
        }
        bail!("no repository given: use -r/--repo or set CAIRN_REPOSITORY (or RESTIC_REPOSITORY)")
    }

    /// The password from flags, `CAIRN_*`/`RESTIC_*` variables, or a prompt on a terminal.
    /// Every copy made on the way is wiped (the environment's own copy cannot be).
    pub fn password(&self) -> anyhow::Result<Password> {
        PasswordLookup {
            file: self.password_file.as_deref(),
            command: self.password_command.as_deref(),
            env_infix: "",
            prompt: "enter password for repository: ",
            missing: "no password given: set CAIRN_PASSWORD (or RESTIC_PASSWORD), \
                      CAIRN_PASSWORD_FILE or --password-file",
        }
        .password()
    }

    /// How to open the repository: the key hint and the cache directory.
    pub fn open_options(&self) -> OpenOptions {
        let key_hint = self
            .key_hint
            .clone()
            .or_else(|| env_first(&["CAIRN_KEY_HINT", "RESTIC_KEY_HINT"]).map(|(_, value)| value));
        OpenOptions {
            key_hint,
            cache_dir: self.cache_dir(),
            ..Default::default()
        }
    }

    /// `--cache-dir`, else the default ([`cairn_repo::default_cache_dir`]); none with
    /// `--no-cache`.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir
            .clone()
            .or_else(cairn_repo::default_cache_dir)
    }

    /// The repository's storage, with `-o` options and `--cacert` files applied.
    pub fn storage(&self, create: bool) -> anyhow::Result<Storage> {
        self.storage_at(&self.location()?, create)
    }

    /// Storage at `location` with this command's `-o` options and `--cacert` files (a copy's
    /// source is reached the same way as its destination).
    pub fn storage_at(&self, location: &str, create: bool) -> anyhow::Result<Storage> {
        let mut options = crate::backend_options::parse(&self.options)?;
        if !self.quiet {
            for warning in &options.warnings {
                eprintln!("warning: {warning}");
            }
        }
        for file in &self.cacerts {
            options.settings.push((
                cairn_repo::storage::CA_CERTIFICATE_OPTION.to_string(),
                file.display().to_string(),
            ));
        }
        Ok(Storage::open_with_options(
            location,
            create,
            &options.settings,
        )?)
    }

    pub async fn open(&self) -> anyhow::Result<Repository> {
        let storage = self.storage(false)?;
        let password = self.password()?;
        let repo = match Repository::open_with(storage.clone(), &password, &self.open_options())
            .await
        {
            Ok(repo) => repo,
            Err(e) => {
                if cairn_repo::restic::is_restic(&storage)
                    .await
                    .unwrap_or(false)
                {
                    anyhow::bail!(
                        "this is a restic repository; use cairn copy --from-repo to import it into a \
                         cairn repository"
                    );
                }
                return Err(e.into());
            }
        };
        crate::output::opened(&repo);
        if self.cleanup_cache {
            self.remove_old_caches(&repo);
        }
        Ok(repo)
    }

    /// `--cleanup-cache`: restic's 30 days, reported on stderr unless quiet.
    fn remove_old_caches(&self, repo: &Repository) {
        let Some(root) = self.cache_dir() else {
            return;
        };
        let keep = repo.cache().map(|c| c.dir());
        let month = std::time::Duration::from_secs(30 * 86_400);
        for removed in cairn_repo::cache::cleanup(&root, keep, month) {
            if !self.quiet && !self.json {
                eprintln!("removed old cache {}", removed.display());
            }
        }
    }

    /// True when progress bars may be drawn (stderr is a terminal, no JSON, not quiet).
    pub fn progress_bars(&self) -> bool {
        !self.json && !self.quiet && std::io::stderr().is_terminal()
    }
}

/// The source repository of `copy` and `init --copy-chunker-params` (restic's `--from-*`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FromRepo {
    /// Source repository (or CAIRN_FROM_REPOSITORY / RESTIC_FROM_REPOSITORY).
    #[arg(id = "from_repo", long = "from-repo")]
    pub repo: Option<String>,
    /// File holding the source repository location.
    #[arg(id = "from_repository_file", long = "from-repository-file")]
    pub repository_file: Option<PathBuf>,
    /// File holding the source repository's password.
    #[arg(id = "from_password_file", long = "from-password-file")]
    pub password_file: Option<PathBuf>,
    /// Command printing the source repository's password.
    #[arg(id = "from_password_command", long = "from-password-command")]
    pub password_command: Option<String>,
}

impl FromRepo {
    /// The source location from flags, then `CAIRN_FROM_*`, then `RESTIC_FROM_*`.
    pub fn location(&self) -> anyhow::Result<String> {
        if let Some(repo) = &self.repo {
            return Ok(repo.clone());
        }
        if let Some(file) = &self.repository_file {
            return read_first_line(file);
        }
        if let Some((_, value)) = env_first(&["CAIRN_FROM_REPOSITORY", "RESTIC_FROM_REPOSITORY"]) {
            return Ok(value);
        }
        if let Some((_, file)) =
            env_first(&["CAIRN_FROM_REPOSITORY_FILE", "RESTIC_FROM_REPOSITORY_FILE"])
        {
            return read_first_line(file.as_ref());
        }
        bail!("no source repository given: use --from-repo or set CAIRN_FROM_REPOSITORY")
    }

    fn password(&self) -> anyhow::Result<Password> {
        PasswordLookup {
            file: self.password_file.as_deref(),
            command: self.password_command.as_deref(),
            env_infix: "FROM_",
            prompt: "enter password for the source repository: ",
            missing: "no source password given: set CAIRN_FROM_PASSWORD or \
                      --from-password-file",
        }
        .password()
    }

    /// Opens the source repository, through the same `-o` options, `--cacert` files and
    /// cache directory as the command's own repository; `CAIRN_FROM_KEY_HINT` (or restic's
    /// `RESTIC_FROM_KEY_HINT`) names the source key to try first.
    pub async fn open(&self, globals: &Globals) -> anyhow::Result<Repository> {
        match self.open_source(globals).await? {
            Source::Cairn(repo) => Ok(*repo),
            Source::Restic(_) => anyhow::bail!(
                "the source is a restic repository: only `cairn copy --from-repo` reads one"
            ),
        }
    }

    /// Opens the source repository, a cairn one or a restic one (told apart by its key
    /// files: restic's are plain JSON with scrypt parameters).
    pub async fn open_source(&self, globals: &Globals) -> anyhow::Result<Source> {
        let storage = globals.storage_at(&self.location()?, false)?;
        if cairn_repo::restic::is_restic(&storage).await? {
            let password = self.password()?;
            let repo = cairn_repo::restic::ResticRepo::open(storage, &password).await?;
            return Ok(Source::Restic(std::sync::Arc::new(repo)));
        }
        let password = self.password()?;
        let options = OpenOptions {
            key_hint: env_first(&["CAIRN_FROM_KEY_HINT", "RESTIC_FROM_KEY_HINT"])
                .map(|(_, value)| value),
            cache_dir: globals.cache_dir(),
            ..Default::default()
        };
        Ok(Source::Cairn(Box::new(
            Repository::open_with(storage, &password, &options).await?,
        )))
    }
}

/// A copy's source: a cairn repository, or a restic one to import from.
pub enum Source {
    /// A cairn repository.
    Cairn(Box<Repository>),
    /// A restic repository (format 1 or 2).
    Restic(std::sync::Arc<cairn_repo::restic::ResticRepo>),
}

/// The one password lookup, for a repository and for a copy's source: the flag's file or
/// command, then `CAIRN_{infix}PASSWORD`, `_FILE`, `_COMMAND` (each before restic's
/// `RESTIC_{infix}...`), then a prompt when stdin is a terminal.
struct PasswordLookup<'a> {
    file: Option<&'a std::path::Path>,
    command: Option<&'a str>,
    /// "" for the repository, "FROM_" for a copy's source.
    env_infix: &'static str,
    prompt: &'static str,
    missing: &'static str,
}

impl PasswordLookup<'_> {
    fn password(&self) -> anyhow::Result<Password> {
        if let Some(file) = self.file {
            return read_password_file(file);
        }
        if let Some(command) = self.command {
            return run_password_command(command);
        }
        let names = |suffix: &str| {
            [
                format!("CAIRN_{}PASSWORD{suffix}", self.env_infix),
                format!("RESTIC_{}PASSWORD{suffix}", self.env_infix),
            ]
        };
        let first = |suffix: &str| {
            let [cairn, restic] = names(suffix);
            env_first(&[cairn.as_str(), restic.as_str()]).map(|(_, value)| value)
        };
        if let Some(value) = first("") {
            return Ok(into_password(value));
        }
        if let Some(file) = first("_FILE") {
            return read_password_file(file.as_ref());
        }
        if let Some(command) = first("_COMMAND") {
            return run_password_command(&command);
        }
        if std::io::stdin().is_terminal() {
            return Ok(into_password(rpassword::prompt_password(self.prompt)?));
        }
        bail!("{}", self.missing)
    }
}

fn read_first_line(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string();
    if line.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(line)
}

/// Moves a password string into a wiped buffer, without another copy.
pub fn into_password(text: String) -> Password {
    Zeroizing::new(text.into_bytes())
}

/// The first line of a password file (without its line ending), wiping the file's text.
pub fn read_password_file(path: &std::path::Path) -> anyhow::Result<Password> {
    let text =
        Zeroizing::new(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    if std::str::from_utf8(&text).is_err() {
        bail!("reading {}: the password file is not UTF-8", path.display());
    }
    let line = first_line(&text);
    if line.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// `bytes` up to the first line ending (`\n` or `\r\n`).
fn first_line(bytes: &[u8]) -> &[u8] {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn run_password_command(command: &str) -> anyhow::Result<Password> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| "running the password command")?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        bail!("the password command failed ({})", output.status);
    }
    std::str::from_utf8(&stdout).context("the password command printed invalid UTF-8")?;
    Ok(Zeroizing::new(first_line(&stdout).to_vec()))
}

/// How a failed command ended: the library's [`Outcome`] for a repository error (whose one
/// table gives the exit code, restic's where restic has one), a plain failure otherwise.
pub fn outcome_for(error: &anyhow::Error) -> Outcome {
    match error.downcast_ref::<RepoError>() {
        Some(error) => Outcome::from(error),
        None => Outcome::Failed(cairn_repo::ErrorKind::InvalidInput),
    }
}
