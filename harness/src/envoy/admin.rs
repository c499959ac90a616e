//! Queries against Envoy's admin endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use super::Envoy;
use crate::error::{Error, Result};
use crate::http::{send, RequestSpec, Response};

/// Admin requests are local and cheap; anything slower means Envoy is stuck.
const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One admin request (any status).
pub(super) async fn request(admin: SocketAddr, method: &str, path: &str) -> Result<Response> {
    let mut req = RequestSpec::get(admin, &admin.to_string(), path);
    req.method = method.to_string();
    req.timeout = ADMIN_REQUEST_TIMEOUT;
    send(&req).await
}

pub(super) async fn get(admin: SocketAddr, path: &str) -> Result<Response> {
    request(admin, "GET", path).await
}

impl Envoy {
    /// `GET path` on the admin endpoint, any status.
    pub async fn admin_request(&self, path: &str) -> Result<Response> {
        get(self.admin, path).await
    }

    /// `GET path` on the admin endpoint; a non-2xx status is an error.
    pub async fn admin_get(&self, path: &str) -> Result<String> {
        self.admin_checked("GET", path).await
    }

    /// `POST path` on the admin endpoint (e.g. `/logging?level=debug`); non-2xx is an error.
    pub async fn admin_post(&self, path: &str) -> Result<String> {
        self.admin_checked("POST", path).await
    }

    async fn admin_checked(&self, method: &str, path: &str) -> Result<String> {
        let r = request(self.admin, method, path).await?;
        if !(200..300).contains(&r.status) {
            return Err(Error::Http(format!(
                "Envoy admin {method} {path}: status {}: {}",
                r.status,
                r.text()
            )));
        }
        Ok(r.text())
    }

    /// The value of counter or gauge `name`, `None` if Envoy has no such stat.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>> {
        let filter = percent_encode(&format!("^{}$", regex_escape(name)));
        let body = self
            .admin_get(&format!("/stats?format=json&filter={filter}"))
            .await?;
        let json: serde_json::Value = parse_json(&body, "/stats")?;
        Ok(json["stats"].as_array().and_then(|stats| {
            stats
                .iter()
                .find(|s| s["name"] == name)
                .and_then(|s| s["value"].as_u64())
        }))
    }

    /// `/config_dump` as JSON.
    pub async fn config_dump(&self) -> Result<serde_json::Value> {
        let body = self.admin_get("/config_dump").await?;
        parse_json(&body, "/config_dump")
    }

    /// Names of dynamic listeners that are active or warming (draining ones are left out).
    pub async fn dynamic_listener_names(&self) -> Result<Vec<String>> {
        let body = self
            .admin_get("/config_dump?resource=dynamic_listeners")
            .await?;
        let json = parse_json(&body, "/config_dump?resource=dynamic_listeners")?;
        let mut names: Vec<String> = json["configs"]
            .as_array()
            .map(|configs| {
                configs
                    .iter()
                    .filter(|c| !c["active_state"].is_null() || !c["warming_state"].is_null())
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }
}

fn parse_json(body: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(body).map_err(|source| Error::Json {
        context: format!("Envoy admin {what}"),
        source,
    })
}

/// Escapes RE2 metacharacters: stat names contain dots.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Percent-encodes everything but unreserved URL characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_filter_is_an_escaped_anchored_regex() {
        assert_eq!(
            percent_encode(&format!("^{}$", regex_escape("server.live"))),
            "%5Eserver%5C.live%24"
        );
    }
}
