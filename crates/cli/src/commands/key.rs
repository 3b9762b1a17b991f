//! `cairn key add|list|remove|passwd`.

use cairn_repo::Outcome;
use std::path::PathBuf;

use cairn_repo::KdfParams;
use serde_json::json;

use crate::context::{into_password, read_password_file, Globals, Password};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Add a key (a new password for the same repository).
    Add(NewPassword),
    /// List keys.
    List,
    /// Remove a key by id (never the one in use).
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the password of the key in use.
    Passwd(NewPassword),
}

#[derive(clap::Args, Debug)]
struct NewPassword {
    /// File holding the new password (else CAIRN_NEW_PASSWORD, else a prompt).
    #[arg(long)]
    new_password_file: Option<PathBuf>,
}

impl NewPassword {
    fn read(&self) -> anyhow::Result<Password> {
        if let Some(file) = &self.new_password_file {
            return read_password_file(file);
        }
        if let Ok(value) = std::env::var("CAIRN_NEW_PASSWORD") {
            return Ok(into_password(value));
        }
        let first = into_password(rpassword::prompt_password("enter new password: ")?);
        let second = into_password(rpassword::prompt_password("enter password again: ")?);
        anyhow::ensure!(*first == *second, "passwords do not match");
        Ok(first)
    }
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let mut repo = globals.open().await?;
    match args.action {
        Action::Add(new) => {
            let id = repo.add_key(&new.read()?, KdfParams::DEFAULT).await?;
            println!("saved new key as {}", &id[..8]);
        }
        Action::List => {
            let keys = repo.list_keys().await?;
            if globals.json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"current": k.current, "id": k.id, "userName": k.username, "hostName": k.hostname, "created": k.created}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!(" {:<10}  {:<12}  {:<20}  Created", "ID", "User", "Host");
                for k in keys {
                    println!(
                        "{}{:<10}  {:<12}  {:<20}  {}",
                        if k.current { "*" } else { " " },
                        &k.id[..8],
                        k.username,
                        k.hostname,
                        k.created
                    );
                }
            }
        }
        Action::Remove { id } => {
            let removed = repo.remove_key(&id).await?;
            println!("removed key {}", &removed[..8]);
        }
        Action::Passwd(new) => {
            let id = repo
                .change_password(&new.read()?, KdfParams::DEFAULT)
                .await?;
            println!("saved new key as {}; the old key was removed", &id[..8]);
        }
    }
    Ok(Outcome::Success)
}
