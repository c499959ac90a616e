//! Values checked the way Envoy checks them, before they reach Envoy.
//!
//! A value Envoy rejects makes it NACK the whole response it came in — for HTTP routes that is every
//! tenant's virtual hosts — so each rule Envoy applies (protobuf ranges, its own limits, the
//! `HTTP_HEADER_VALUE` pattern of its proto validation) is applied here first, and the object that
//! carries a bad value gets an `invalid` status naming it instead.

use std::time::Duration;

/// The longest duration Envoy accepts where it converts to milliseconds (timeouts, intervals): it
/// refuses `seconds` ≥ 9,223,372,036 (`i64::MAX` nanoseconds in whole seconds; measured with
/// `envoy --mode validate` on 1.36 and 1.40: 9223372035.999999999s is accepted, 9223372036s is not),
/// far below protobuf's own limit of 315,576,000,000 s. About 292 years.
pub const MAX_DURATION: Duration = Duration::new(9_223_372_035, 999_999_999);

/// Checks a duration against [`MAX_DURATION`].
pub fn duration(value: Duration) -> Result<Duration, String> {
    if value > MAX_DURATION {
        Err(format!(
            "{}s is longer than the longest duration Envoy accepts ({}s, about 292 years)",
            value.as_secs(),
            MAX_DURATION.as_secs()
        ))
    } else {
        Ok(value)
    }
}

/// An HTTP field value (RFC 7230 `field-value`): visible ASCII, spaces and tabs, no CR, LF or NUL,
/// which is also what Envoy's `HTTP_HEADER_VALUE` rule refuses.
pub fn header_value(value: &str) -> Result<(), String> {
    match value
        .chars()
        .find(|c| *c != ' ' && *c != '\t' && (c.is_control() || !c.is_ascii()))
    {
        Some(c) => Err(format!("{value:?} contains the character {c:?}")),
        None => Ok(()),
    }
}

/// A name sent as TLS SNI (an upstream's `validation.subjectName` is also its SNI): a header-safe
/// value of at most 255 bytes, Envoy's limit for `UpstreamTlsContext.sni`.
pub fn sni(value: &str) -> Result<(), String> {
    header_value(value)?;
    if value.len() > 255 {
        return Err(format!(
            "is {} bytes long, more than the 255 Envoy accepts for SNI",
            value.len()
        ));
    }
    Ok(())
}

/// A path as routes match it and rewrites produce it: starts with `/`, printable ASCII only, no
/// whitespace, no `?` or `#` (those start the query and fragment, never part of a path).
pub fn path(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err(format!("{value:?} must start with \"/\""));
    }
    match value
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#'))
    {
        Some(c) => Err(format!("{value:?} contains the character {c:?}")),
        None => Ok(()),
    }
}

/// An IngressRoute route's `match` prefix.
pub fn route_prefix(prefix: &str) -> Result<(), String> {
    path(prefix).map_err(|e| format!("route match {e}"))
}

/// A route's `prefixRewrite`.
pub fn prefix_rewrite(rewrite: &str) -> Result<(), String> {
    path(rewrite)
}

/// Weights of a split: Envoy adds them up in 32 bits.
pub fn weight_sum(weights: impl IntoIterator<Item = u32>) -> Result<(), String> {
    let sum: u64 = weights.into_iter().map(u64::from).sum();
    if sum > u64::from(u32::MAX) {
        Err(format!(
            "the weights add up to {sum}, more than Envoy's limit of {}",
            u32::MAX
        ))
    } else {
        Ok(())
    }
}

/// A whole number of seconds from a custom resource: zero or absent means "the default", a negative
/// value is an error, and the result must be a duration Envoy accepts.
pub fn seconds(field: &str, value: Option<i64>) -> Result<Option<Duration>, String> {
    match value {
        None | Some(0) => Ok(None),
        Some(v) if v < 0 => Err(format!("{field} {v} is negative")),
        Some(v) => duration(Duration::from_secs(v.unsigned_abs()))
            .map(Some)
            .map_err(|e| format!("{field}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("example.com", true)]
    #[case::space_and_tab("a b\tc", true)]
    #[case::cr("a\rb", false)]
    #[case::lf("a\nb", false)]
    #[case::nul("a\0b", false)]
    #[case::delete("a\u{7f}", false)]
    #[case::non_ascii("caf\u{e9}", false)]
    fn header_value_rule(#[case] value: &str, #[case] ok: bool) {
        assert_eq!(header_value(value).is_ok(), ok, "{value:?}");
    }

    #[rstest]
    #[case::root("/", true)]
    #[case::nested("/a/b-c_d.e~f%20", true)]
    #[case::relative("a", false)]
    #[case::query("/a?b", false)]
    #[case::fragment("/a#b", false)]
    #[case::space("/a b", false)]
    #[case::crlf("/a\r\nx: y", false)]
    #[case::nul("/a\0", false)]
    #[case::non_ascii("/caf\u{e9}", false)]
    fn path_rule(#[case] value: &str, #[case] ok: bool) {
        assert_eq!(path(value).is_ok(), ok, "{value:?}");
    }

    #[test]
    fn durations_above_envoys_limit_are_refused_and_the_limit_itself_is_accepted() {
        assert!(duration(MAX_DURATION).is_ok());
        assert!(duration(MAX_DURATION + Duration::from_nanos(1)).is_err());
        // The value Envoy 1.40 rejected at 5,000 generated cases ("Duration out-of-range").
        assert!(duration(Duration::from_secs(9_223_372_036)).is_err());
        // The value that froze every tenant's routes in the field report.
        assert!(duration(Duration::from_secs(100_000_000_000 * 3600)).is_err());
    }

    #[test]
    fn sni_is_at_most_255_bytes() {
        assert!(sni(&"a".repeat(255)).is_ok());
        assert!(sni(&"a".repeat(256)).is_err());
        assert!(sni("a\nb").is_err());
    }

    #[test]
    fn weights_may_add_up_to_u32_max_but_not_beyond() {
        assert!(weight_sum([u32::MAX - 1, 1]).is_ok());
        assert!(weight_sum([u32::MAX, 1]).is_err());
    }

    #[rstest]
    #[case::absent(None, Ok(None))]
    #[case::zero_is_default(Some(0), Ok(None))]
    #[case::positive(Some(5), Ok(Some(Duration::from_secs(5))))]
    #[case::negative(Some(-1), Err(()))]
    #[case::huge(Some(i64::MAX), Err(()))]
    fn seconds_rule(#[case] value: Option<i64>, #[case] expected: Result<Option<Duration>, ()>) {
        assert_eq!(seconds("x", value).map_err(|_| ()), expected);
    }
}
