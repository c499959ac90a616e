//! Contour's annotations, read in one place. Each is accepted under `projectcontour.io/` and
//! `contour.heptio.com/` (the newer prefix wins when both are set). A value that doesn't parse is an
//! error the object's status reports; it is never replaced by a default.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use super::{RetryPolicy, Timeout, TlsVersion};

/// The two prefixes, newest first.
const PREFIXES: [&str; 2] = ["projectcontour.io/", "contour.heptio.com/"];

/// The retry conditions Envoy's router understands (`x-envoy-retry-on` and `x-envoy-retry-grpc-on`).
const RETRY_ON: [&str; 13] = [
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// The fault hook's annotation: a request timeout in seconds that is not checked against Envoy's
/// limits. Only with the `fault-hooks` feature (which the e2e tests enable).
#[cfg(feature = "fault-hooks")]
pub const FAULT_UNCHECKED_REQUEST_TIMEOUT: &str =
    "isobar.test/fault-unchecked-request-timeout-seconds";

/// An object's annotations.
pub struct Annotations<'a>(Option<&'a BTreeMap<String, String>>);

impl<'a> Annotations<'a> {
    pub fn new(map: Option<&'a BTreeMap<String, String>>) -> Self {
        Annotations(map)
    }

    /// A Contour annotation by its name without prefix, with the full key it was found under. Found
    /// among the keys under each prefix (a range of the sorted map) without writing the key out: this
    /// runs for every annotation isobar knows, on every object and every Service a route sends to.
    pub fn contour(&self, name: &str) -> Option<(&'a str, &'a str)> {
        let map = self.0?;
        PREFIXES.iter().find_map(|prefix| {
            map.range::<str, _>((Bound::Included(*prefix), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .find(|(key, _)| key[prefix.len()..] == *name)
                .map(|(key, value)| (key.as_str(), value.as_str()))
        })
    }

    /// An annotation by its full key.
    pub fn exact(&self, key: &str) -> Option<&'a str> {
        self.0?.get(key).map(String::as_str)
    }

    /// A boolean annotation under its full key.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        self.exact(key).map(|v| parse_bool(key, v)).transpose()
    }

    /// `request-timeout`.
    pub fn request_timeout(&self) -> Result<Option<Timeout>, String> {
        // A test-only fault hook (never in a build without the `fault-hooks` feature): a timeout that
        // skips validation, so the tests can make Envoy NACK and watch the isolation find the object.
        #[cfg(feature = "fault-hooks")]
        if let Some(v) = self.exact(FAULT_UNCHECKED_REQUEST_TIMEOUT) {
            let seconds: u64 = v.trim().parse().map_err(|_| {
                format!("annotation {FAULT_UNCHECKED_REQUEST_TIMEOUT}: not a number")
            })?;
            return Ok(Some(Timeout::After(Duration::from_secs(seconds))));
        }
        self.contour("request-timeout")
            .map(|(k, v)| parse_timeout(v).map_err(|e| format!("annotation {k}: {e}")))
            .transpose()
    }

    /// `retry-on`, `num-retries` and `per-try-timeout` together.
    pub fn retry_policy(&self) -> Result<Option<RetryPolicy>, String> {
        let Some((key, retry_on)) = self.contour("retry-on") else {
            for name in ["num-retries", "per-try-timeout"] {
                if let Some((k, _)) = self.contour(name) {
                    return Err(format!(
                        "annotation {k} needs a retry-on annotation beside it"
                    ));
                }
            }
            return Ok(None);
        };
        let conditions = parse_retry_on(retry_on).map_err(|e| format!("annotation {key}: {e}"))?;
        let num_retries = self
            .contour("num-retries")
            .map(|(k, v)| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("annotation {k}: {v:?} is not a whole number"))
            })
            .transpose()?
            .unwrap_or(1);
        let per_try_timeout = self
            .contour("per-try-timeout")
            .map(|(k, v)| parse_duration(v).map_err(|e| format!("annotation {k}: {e}")))
            .transpose()?;
        Ok(Some(RetryPolicy {
            retry_on: conditions,
            num_retries,
            per_try_timeout,
        }))
    }

    /// `websocket-routes`: the paths that accept WebSocket upgrades.
    pub fn websocket_routes(&self) -> Vec<String> {
        self.contour("websocket-routes")
            .map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `tls-minimum-protocol-version`.
    pub fn tls_minimum_protocol_version(&self) -> Result<Option<TlsVersion>, String> {
        self.contour("tls-minimum-protocol-version")
            .map(|(k, v)| parse_tls_version(v).map_err(|e| format!("annotation {k}: {e}")))
            .transpose()
    }

    /// A non-negative count annotation (`max-connections`, ...).
    pub fn count(&self, name: &str) -> Result<Option<u32>, String> {
        self.contour(name)
            .map(|(k, v)| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("annotation {k}: {v:?} is not a whole number"))
            })
            .transpose()
    }

    /// `upstream-protocol.{h2,h2c,tls}`: the ports (names or numbers) listed for each protocol.
    pub fn upstream_protocols(&self) -> Vec<(&'static str, Vec<String>)> {
        [
            ("h2", "upstream-protocol.h2"),
            ("h2c", "upstream-protocol.h2c"),
            ("tls", "upstream-protocol.tls"),
        ]
        .into_iter()
        .filter_map(|(proto, name)| {
            self.contour(name).map(|(_, v)| {
                (
                    proto,
                    v.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            })
        })
        .collect()
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!(
            "annotation {key}: {other:?} is neither \"true\" nor \"false\""
        )),
    }
}

/// A request timeout: a Go-style duration, or `infinity`.
pub fn parse_timeout(value: &str) -> Result<Timeout, String> {
    match value.trim() {
        "infinity" | "infinite" => Ok(Timeout::Infinite),
        other => parse_duration(other).map(Timeout::After),
    }
}

/// A Go-style duration: `300ms`, `1.5s`, `2m30s`, `1h`. Zero is allowed; negatives are not.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    let invalid = || format!("{value:?} is not a duration like \"500ms\", \"10s\" or \"1m30s\"");
    if text.is_empty() {
        return Err(invalid());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    let duration = Duration::try_from_secs_f64(total).map_err(|_| invalid())?;
    super::validate::duration(duration).map_err(|e| format!("{value:?}: {e}"))
}

fn parse_retry_on(value: &str) -> Result<String, String> {
    let conditions: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if conditions.is_empty() {
        return Err("no retry condition given".to_string());
    }
    if let Some(unknown) = conditions.iter().find(|c| !RETRY_ON.contains(c)) {
        return Err(format!(
            "{unknown:?} is not a retry condition (one of {})",
            RETRY_ON.join(", ")
        ));
    }
    Ok(conditions.join(","))
}

/// `1.1`, `1.2` or `1.3`.
pub fn parse_tls_version(value: &str) -> Result<TlsVersion, String> {
    match value.trim() {
        "1.1" => Ok(TlsVersion::V1_1),
        "1.2" => Ok(TlsVersion::V1_2),
        "1.3" => Ok(TlsVersion::V1_3),
        other => Err(format!("{other:?} is not a TLS version (1.1, 1.2 or 1.3)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::milliseconds("300ms", Some(Duration::from_millis(300)))]
    #[case::fractional_seconds("1.5s", Some(Duration::from_millis(1500)))]
    #[case::minutes_and_seconds("2m30s", Some(Duration::from_secs(150)))]
    #[case::hours("1h", Some(Duration::from_secs(3600)))]
    #[case::bare_zero("0", Some(Duration::ZERO))]
    #[case::no_unit("10", None)]
    #[case::unknown_unit("10d", None)]
    #[case::negative("-1s", None)]
    #[case::garbage("soon", None)]
    #[case::beyond_envoys_limit("100000000000h", None)]
    #[case::just_beyond_envoys_limit("2562048h", None)]
    #[case::just_within_envoys_limit("2562047h", Some(Duration::from_secs(2_562_047 * 3600)))]
    fn duration_rule(#[case] text: &str, #[case] expected: Option<Duration>) {
        assert_eq!(parse_duration(text).ok(), expected);
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_newer_prefix_wins() {
        let map = annotations(&[
            ("contour.heptio.com/request-timeout", "1s"),
            ("projectcontour.io/request-timeout", "2s"),
        ]);
        assert_eq!(
            Annotations::new(Some(&map)).request_timeout().unwrap(),
            Some(Timeout::After(Duration::from_secs(2)))
        );
    }

    #[rstest]
    #[case::bad_timeout(&[("contour.heptio.com/request-timeout", "forever")], "request-timeout")]
    #[case::bad_retry_condition(&[("projectcontour.io/retry-on", "5xx,sometimes")], "\"sometimes\" is not a retry condition")]
    #[case::retries_without_condition(&[("projectcontour.io/num-retries", "3")], "needs a retry-on")]
    #[case::bad_retry_count(&[("projectcontour.io/retry-on", "5xx"), ("projectcontour.io/num-retries", "many")], "not a whole number")]
    fn invalid_values_are_reported(#[case] pairs: &[(&str, &str)], #[case] message: &str) {
        let map = annotations(pairs);
        let a = Annotations::new(Some(&map));
        let err = a
            .request_timeout()
            .err()
            .or_else(|| a.retry_policy().err())
            .expect("an error");
        assert!(err.contains(message), "{err}");
    }

    #[rstest]
    #[case::newer_prefix(&[("projectcontour.io/max-connections", "1")], Some(("projectcontour.io/max-connections", "1")))]
    #[case::older_prefix(&[("contour.heptio.com/max-connections", "2")], Some(("contour.heptio.com/max-connections", "2")))]
    #[case::the_newer_wins(&[("contour.heptio.com/max-connections", "2"), ("projectcontour.io/max-connections", "1")], Some(("projectcontour.io/max-connections", "1")))]
    #[case::a_longer_name_is_another_annotation(&[("projectcontour.io/max-connections-x", "1"), ("projectcontour.io/max", "3")], None)]
    #[case::another_prefix(&[("example.com/max-connections", "1"), ("projectcontour.io", "1")], None)]
    fn contour_annotations_are_found_under_either_prefix(
        #[case] pairs: &[(&str, &str)],
        #[case] expected: Option<(&str, &str)>,
    ) {
        let map = annotations(pairs);
        assert_eq!(
            Annotations::new(Some(&map)).contour("max-connections"),
            expected
        );
    }

    #[test]
    fn a_bad_tls_version_is_reported_not_defaulted() {
        let map = annotations(&[("contour.heptio.com/tls-minimum-protocol-version", "1.0")]);
        let err = Annotations::new(Some(&map))
            .tls_minimum_protocol_version()
            .unwrap_err();
        assert!(err.contains("is not a TLS version"), "{err}");
    }
}
