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

/// Parses `key=value` options.
///
/// # Errors
/// An option without `=`, or an unknown key outside restic's and object_store's namespaces.
pub fn parse(options: &[String]) -> anyhow::Result<BackendOptions> {
    let mut out = BackendOptions::default();
    for option in options {
        let Some((key, value)) = option.split_once('=') else {
            bail!("invalid option {option:?}: expected key=value");
        };
        let (key, value) = (key.trim(), value.trim());
        let mapped = match key {
            "s3.region" => Some(("aws_region", value.to_string())),
            "s3.bucket-lookup" => match value {
                "path" => Some(("aws_virtual_hosted_style_request", "false".into())),
                "dns" => Some(("aws_virtual_hosted_style_request", "true".into())),
                "auto" => None,
                other => bail!("invalid option s3.bucket-lookup={other:?}: use auto, dns or path"),
            },
            "s3.unsafe-anonymous-auth" => Some(("aws_skip_signature", value.to_string())),
            _ if key.starts_with("aws_")
                || key.starts_with("google_")
                || key.starts_with("azure_") =>
            {
                out.settings.push((key.to_string(), value.to_string()));
                continue;
            }
            _ if ["s3.", "gs.", "azure.", "local.", "rest.", "sftp.", "b2.", "swift.", "rclone."]
                .iter()
                .any(|ns| key.starts_with(ns)) =>
            {
                out.warnings.push(format!(
                    "option {key} is a restic option cairn does not use; ignored"
                ));
                continue;
            }
            _ => bail!("unknown option {key:?} (restic's s3.*/gs.*/azure.* options, or object_store keys like aws_endpoint)"),
        };
        if let Some((key, value)) = mapped {
            out.settings.push((key.to_string(), value));
        }
    }
    Ok(out)
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
            "aws_endpoint=http://127.0.0.1:9000",
        ]))
        .unwrap();
        assert_eq!(
            parsed.settings,
            vec![
                ("aws_region".into(), "eu-west-1".into()),
                ("aws_virtual_hosted_style_request".into(), "false".into()),
                ("aws_endpoint".into(), "http://127.0.0.1:9000".into()),
            ]
        );
        assert_eq!(parsed.warnings.len(), 1);
        assert!(parsed.warnings[0].contains("s3.connections"));
    }

    #[test]
    fn malformed_options_are_errors_naming_the_input() {
        for bad in ["s3.region", "frobnicate=1", "s3.bucket-lookup=sideways"] {
            let err = parse(&opts(&[bad])).unwrap_err().to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{err}");
        }
    }
}
