//! restic's `-o/--option key=value` mapped onto object_store settings. Options restic has
//! that cairn has no use for are accepted with a warning, so restic command lines keep
//! working; object_store's own keys (`aws_*`, `google_*`, `azure_*`) pass through.

use anyhow::bail;

/// What `-o` options amount to: backend settings, and warnings about ignored keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// object_store configuration keys and values.
    pub settings: Vec<(String, String)>,
    /// One line per option cairn ignores.
    pub warnings: Vec<String>,
}

/// restic's option namespaces.
const NAMESPACES: [&str; 9] = [
    "s3.", "gs.", "azure.", "local.", "rest.", "sftp.", "b2.", "swift.", "rclone.",
];

/// Parses `key=value` options.
///
/// # Errors
/// An option without `=`, or an unknown key outside restic's and object_store's namespaces.
pub fn parse(options: &[String]) -> anyhow::Result<BackendOptions> {
    let mut out = BackendOptions::default();
    for option in options {
        // Values can be secrets (aws_secret_access_key=...): errors name the key, never the
        // value, nor an option that has no `=` (it may be a value passed without its key).
        let Some((key, value)) = option.split_once('=') else {
            bail!(
                "invalid option {}: expected key=value",
                describe_malformed(option)
            );
        };
        let (key, value) = (key.trim(), value.trim());
        let mapped = match key {
            "s3.region" => Some(("aws_region", value.to_string())),
            "s3.bucket-lookup" => match value {
                "path" => Some(("aws_virtual_hosted_style_request", "false".into())),
                "dns" => Some(("aws_virtual_hosted_style_request", "true".into())),
                "auto" => None,
                _ => bail!("invalid value for option s3.bucket-lookup: use auto, dns or path"),
            },
            "s3.unsafe-anonymous-auth" => Some(("aws_skip_signature", value.to_string())),
            // Requests at once, any backend: the library reads it (and checks the value).
            _ if cairn_repo::storage::is_connections_option(key) => {
                out.settings.push((key.to_string(), value.to_string()));
                continue;
            }
            // `cairn mount`'s own options (it reads and checks them).
            _ if key.starts_with("mount.") => continue,
            _ if key.starts_with("aws_")
                || key.starts_with("google_")
                || key.starts_with("azure_") =>
            {
                out.settings.push((key.to_string(), value.to_string()));
                continue;
            }
            _ if NAMESPACES.iter().any(|ns| key.starts_with(ns)) =>
            {
                out.warnings.push(format!(
                    "option {key} is a restic option cairn does not use; ignored"
                ));
                continue;
            }
            _ => bail!("unknown option {} (restic's s3.*/gs.*/azure.* options, or object_store keys like aws_endpoint)", shown_key(key)),
        };
        if let Some((key, value)) = mapped {
            out.settings.push((key.to_string(), value));
        }
    }
    Ok(out)
}

/// True for what an option key looks like (restic's and object_store's keys are lower case):
/// only such text is echoed in errors.
fn looks_like_key(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// An option key for an error message: itself if it looks like a key, else only its length
/// (text before a `=` that is not a key may be part of a secret, such as a base64 value).
fn shown_key(key: &str) -> String {
    if looks_like_key(key) {
        format!("{key:?}")
    } else {
        format!(
            "of {} characters (not shown: option keys are lower case, so it may be a value)",
            key.chars().count()
        )
    }
}

/// Names a `-o` argument that has no `=` without echoing it: by the key it starts with, if
/// any (`aws_secret_access_key:...` names `aws_secret_access_key`), else by its length.
fn describe_malformed(option: &str) -> String {
    let key: String = option
        .trim()
        .chars()
        .take_while(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
        })
        .collect();
    // Without `=` there is no telling a key from a value: only a key in a namespace cairn
    // knows is named.
    let known = ["aws_", "google_", "azure_"]
        .iter()
        .chain(NAMESPACES.iter())
        .any(|ns| key.starts_with(ns));
    if known && looks_like_key(&key) {
        format!("{key:?} (value not shown)")
    } else {
        format!(
            "of {} characters (not shown: it may be a secret)",
            option.chars().count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn restic_options_map_or_warn() {
        let parsed = parse(&opts(&[
            "s3.region=eu-west-1",
            "s3.bucket-lookup=path",
            "s3.connections=10",
            "s3.storage-class=STANDARD",
            "aws_endpoint=http://127.0.0.1:9000",
        ]))
        .unwrap();
        assert_eq!(
            parsed.settings,
            vec![
                ("aws_region".into(), "eu-west-1".into()),
                ("aws_virtual_hosted_style_request".into(), "false".into()),
                ("s3.connections".into(), "10".into()),
                ("aws_endpoint".into(), "http://127.0.0.1:9000".into()),
            ]
        );
        assert_eq!(parsed.warnings.len(), 1);
        assert!(parsed.warnings[0].contains("s3.storage-class"));
    }

    #[test]
    fn malformed_options_are_errors_naming_the_key() {
        for bad in ["s3.region", "frobnicate=1", "s3.bucket-lookup=sideways"] {
            let err = parse(&opts(&[bad])).unwrap_err().to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{err}");
        }
    }

    proptest::proptest! {
        /// No error ever shows an option's value (values drawn so that they cannot also be
        /// part of an echoed key, which is lower case).
        #[test]
        fn errors_never_show_values(
            key in "[a-z0-9_.-]{0,20}|aws_[a-z_]{1,20}|s3\\.bucket-lookup|[A-Za-z0-9+/=: ]{0,30}",
            separator in "[=: ]?",
            value in "[A-Z0-9+/]{12,40}",
        ) {
            let option = format!("{key}{separator}{value}");
            if let Err(e) = parse(&[option]) {
                let message = e.to_string();
                proptest::prop_assert!(!message.contains(&value), "{}", message);
            }
        }
    }

    #[test]
    fn malformed_options_never_echo_values() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for bad in [
            format!("aws_secret_access_key:{secret}"),
            format!("aws_secret_access_key {secret}"),
            secret.to_string(),
            format!("s3.bucket-lookup={secret}"),
            format!("  {secret}  "),
            format!("{secret}=="),
            "hunter2".to_string(),
            "AKIAIOSFODNN7EXAMPLE=x".replace("AKIAIOSFODNN7EXAMPLE", secret),
        ] {
            let err = parse(&opts(&[&bad])).unwrap_err().to_string();
            assert!(!err.contains(secret), "{err}");
            assert!(!err.contains("wJalr"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("option"), "{err}");
        }
        let err = parse(&opts(&[&format!("aws_secret_access_key:{secret}")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"aws_secret_access_key\""), "{err}");
    }
}
