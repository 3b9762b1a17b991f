//! A moto S3 server for tests; std only, so the CLI's tests include this file too.
#![allow(dead_code)]

use std::path::Path;

/// A moto S3 server on loopback for this test binary's lifetime; killed on drop.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts `moto_server` on a free loopback port. Returns `None` (after saying why) when
    /// it is not installed, unless `CAIRN_REQUIRE_S3` is set (as CI sets it), then panics.
    pub fn start() -> Option<S3Server> {
        Self::launch(None)
    }

    /// Like [`S3Server::start`], serving HTTPS with the given certificate and key files.
    pub fn start_tls(cert: &Path, key: &Path) -> Option<S3Server> {
        Self::launch(Some((cert, key)))
    }

    fn launch(tls: Option<(&Path, &Path)>) -> Option<S3Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new("moto_server");
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((cert, key)) = tls {
            command.arg("-c").arg(cert).arg("-k").arg(key);
        }
        let child = match command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                if std::env::var_os("CAIRN_REQUIRE_S3").is_some() {
                    panic!("CAIRN_REQUIRE_S3 is set but moto_server cannot start: {e}");
                }
                eprintln!("skipped: moto_server not available ({e}); pip install 'moto[server]'");
                return None;
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = S3Server {
            child,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(server)
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "creating bucket {bucket}: {response}"
        );
    }

    /// object_store options for this server.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_region", "us-east-1"),
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same settings as environment variables, for child processes.
    pub fn env(&self) -> Vec<(String, String)> {
        self.options()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect()
    }
}
