//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromedriver`), for tests of
//! the operator page: a page loads, its text is read, the browser's console errors are collected
//! and a screenshot is taken.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

pub use fantoccini::Locator;

use crate::error::{Error, Result};
use crate::http::{send, RequestSpec};
use crate::ports::free_port;
use crate::process::ChildProcess;
use crate::wait::wait_for_async;

/// Overrides the Chromium binary (default `/usr/bin/chromium`).
pub const CHROMIUM_ENV: &str = "CHROMIUM_BIN";
/// Overrides the chromedriver binary (default `/usr/bin/chromedriver`).
pub const CHROMEDRIVER_ENV: &str = "CHROMEDRIVER_BIN";

const HOW: &str = "install Debian's packages `chromium` and `chromium-driver` (ci/install-prerequisites.sh does), or set CHROMIUM_BIN and CHROMEDRIVER_BIN";

fn binary(env: &str, default: &str, what: &str) -> Result<PathBuf> {
    let path = std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingComponent {
            what: format!("{what} ({})", path.display()),
            how: HOW.to_string(),
        })
    }
}

/// A chromedriver process and one session of headless Chromium on it.
pub struct Browser {
    pub client: Client,
    // Dropped after the client: the driver ends the browser with it.
    _driver: ChildProcess,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a loopback port and a headless Chromium session with a fresh profile;
    /// logs go to `work_dir`.
    pub async fn start(work_dir: &Path) -> Result<Browser> {
        let chromium = binary(CHROMIUM_ENV, "/usr/bin/chromium", "Chromium")?;
        let chromedriver = binary(CHROMEDRIVER_ENV, "/usr/bin/chromedriver", "chromedriver")?;
        let port = free_port()?;
        let mut cmd = Command::new(&chromedriver);
        cmd.arg(format!("--port={port}"));
        let driver = ChildProcess::spawn("chromedriver", cmd, work_dir)?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_async(
            Duration::from_secs(20),
            "chromedriver to answer /status",
            || async {
                driver.ensure_running()?;
                Ok(send(&RequestSpec::get(addr, &addr.to_string(), "/status"))
                    .await
                    .ok()
                    .filter(|r| r.status == 200))
            },
        )
        .await?;
        let profile = tempfile::Builder::new()
            .prefix("isobar-chromium-")
            .tempdir()
            .map_err(|e| Error::io("creating Chromium's profile dir", e))?;
        // The flags keep Chromium from reaching for the network on its own (updates, sync, field
        // trials): this machine's network is closed and the test talks to loopback only.
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-proxy-server".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1400,1350".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": chromium, "args": args}),
        );
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({"browser": "ALL"}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}/"))
            .await
            .map_err(|e| Error::Process {
                what: "a Chromium session".into(),
                detail: e.to_string(),
                log: driver.log_tail(30),
            })?;
        Ok(Browser {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// The browser console's entries of level SEVERE (errors, failed loads) since the last call.
    pub async fn console_errors(&self) -> Result<Vec<String>> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .map_err(|e| Error::Process {
                what: "reading the browser log".into(),
                detail: e.to_string(),
                log: String::new(),
            })?;
        Ok(log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    /// Ends the session (and with it the browser).
    pub async fn close(self) -> Result<()> {
        self.client.close().await.map_err(|e| Error::Process {
            what: "closing the Chromium session".into(),
            detail: e.to_string(),
            log: String::new(),
        })
    }
}

/// chromedriver's log endpoint (an extension of WebDriver that Selenium's `get_log` uses).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}
