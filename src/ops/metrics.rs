//! `/metrics`: Prometheus text (format 0.0.4), encoded by `prometheus-client`.
//!
//! The counters stay plain atomics where they are counted (the xDS streams, the pipeline, the status
//! writer) and the gauges are views of current state (open streams, cache size, statuses, certificate
//! expiry), so one [`Collector`] reads them all at scrape time and nothing is counted twice. Metrics
//! that exist only for Prometheus (histograms) register in the same [`Registry`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Ops;
use crate::controller::ControllerState;
use crate::dag::Validity;
use crate::xds::cache::XdsCache;
use crate::xds::stats::XdsStats;
use crate::xds::type_url;

/// isobar's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Every metric isobar exports, read from the live state on each scrape.
    pub fn new(stats: Arc<XdsStats>, state: Arc<ControllerState>, cache: Arc<XdsCache>) -> Self {
        let mut registry = Registry::default();
        state.latency.register(&mut registry);
        stats.answer_latency.register(&mut registry);
        registry.register_collector(Box::new(LiveState {
            stats,
            state,
            cache,
        }));
        Metrics { registry }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

pub(super) async fn handler(State(ops): State<Ops>) -> Response {
    match ops.metrics.encode() {
        Ok(text) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

#[derive(Debug)]
struct LiveState {
    stats: Arc<XdsStats>,
    state: Arc<ControllerState>,
    cache: Arc<XdsCache>,
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for LiveState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let (s, st) = (&self.stats, &self.state);
        // Counter names without `_total`: the encoder appends it.
        for (name, help, value) in [
            (
                "isobar_xds_responses",
                "xDS responses sent.",
                load(&s.responses_sent),
            ),
            (
                "isobar_xds_response_bytes",
                "Encoded bytes of the xDS responses sent (both protocols): what a change costs on the wire.",
                load(&s.response_bytes),
            ),
            (
                "isobar_xds_acks",
                "xDS responses Envoy accepted.",
                load(&s.acks),
            ),
            (
                "isobar_xds_tls_handshake_failures",
                "xDS connections refused at the TLS handshake (bad or missing client certificate, not TLS, or not done within --xds-handshake-timeout).",
                load(&s.handshake_failures),
            ),
            (
                "isobar_xds_client_san_refusals",
                "xDS clients refused after the TLS handshake: no SAN DNS name in --xds-client-san.",
                load(&s.client_san_refusals),
            ),
            (
                "isobar_endpoint_refreshes",
                "EDS-only updates (an endpoint change rebuilds nothing else).",
                load(&st.endpoint_refreshes),
            ),
            (
                "isobar_status_writes",
                "Object statuses written to the API server.",
                load(&st.status.writes),
            ),
            (
                "isobar_status_write_failures",
                "Status writes that failed (retried on the next change).",
                load(&st.status.failures),
            ),
            (
                "isobar_events",
                "Warning Events published on Ingresses (one per transition to invalid or to another reason).",
                load(&st.status.events),
            ),
            (
                "isobar_event_failures",
                "Events that could not be published (retried on the next change).",
                load(&st.status.event_failures),
            ),
            (
                "isobar_rebuilds",
                "Configuration rebuilds.",
                load(&st.rebuilds),
            ),
        ] {
            counter(&mut encoder, name, help, value)?;
        }
        {
            let by_type = s.nacks_by_type();
            let mut family = encoder.encode_descriptor(
                "isobar_xds_nacks",
                "xDS responses Envoy rejected (NACK), by resource type.",
                None,
                MetricType::Counter,
            )?;
            // Every type, NACKed or not, so `rate()` has a series from the start.
            for t in type_url::ALL {
                let n = by_type.get(t).copied().unwrap_or(0);
                ConstCounter::new(n)
                    .encode(family.encode_family(&[("type", type_url::kind_name(t))])?)?;
            }
        }
        gauge(
            &mut encoder,
            "isobar_xds_streams",
            "Open xDS streams.",
            count(s.open_streams()),
        )?;
        gauge(
            &mut encoder,
            "isobar_xds_tls_awaiting_client_hello",
            "xDS connections accepted whose TLS ClientHello has not arrived.",
            i64::try_from(load(&s.awaiting_client_hello)).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut encoder,
            "isobar_xds_tls_handshakes_in_progress",
            "xDS TLS handshakes holding one of the --xds-max-concurrent-handshakes slots.",
            i64::try_from(load(&s.handshakes_in_progress)).unwrap_or(i64::MAX),
        )?;
        {
            let snapshot = self.cache.current();
            let mut family = encoder.encode_descriptor(
                "isobar_xds_resources",
                "Resources in the xDS cache.",
                None,
                MetricType::Gauge,
            )?;
            for t in type_url::ALL {
                ConstGauge::new(count(snapshot.len(t)))
                    .encode(family.encode_family(&[("type", type_url::short_name(t))])?)?;
            }
        }
        {
            let statuses = st.statuses.borrow().clone();
            let mut family = encoder.encode_descriptor(
                "isobar_objects",
                "Objects by status.",
                None,
                MetricType::Gauge,
            )?;
            for validity in [Validity::Valid, Validity::Invalid, Validity::Orphaned] {
                let n = statuses.values().filter(|s| s.validity == validity).count();
                let label = validity.to_string();
                ConstGauge::new(count(n))
                    .encode(family.encode_family(&[("status", label.as_str())])?)?;
            }
        }
        let tls = st.tls.lock().ok().and_then(|t| t.clone());
        if let Some(tls) = tls {
            let expiries = tls.expiries();
            let mut family = encoder.encode_descriptor(
                "isobar_certificate_expiry_seconds",
                "When the xDS server's certificates expire (Unix time).",
                None,
                MetricType::Gauge,
            )?;
            for (cert, list) in [("serving", &expiries.serving), ("ca", &expiries.ca)] {
                for e in list {
                    ConstGauge::new(e.not_after).encode(
                        family.encode_family(&[("cert", cert), ("serial", e.serial.as_str())])?,
                    )?;
                }
            }
        }
        let errors = st.source_errors.lock().map(|e| e.len()).unwrap_or_default();
        gauge(
            &mut encoder,
            "isobar_source_errors",
            "Manifests that do not parse.",
            count(errors),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::stats::Nack;

    fn metrics() -> (Metrics, Arc<XdsStats>, Arc<ControllerState>) {
        let stats = Arc::new(XdsStats::default());
        let state = Arc::new(ControllerState::default());
        let metrics = Metrics::new(
            Arc::clone(&stats),
            Arc::clone(&state),
            Arc::new(XdsCache::new()),
        );
        (metrics, stats, state)
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn the_existing_metric_names_are_exported() {
        let (metrics, stats, state) = metrics();
        stats.responses_sent.fetch_add(3, Ordering::Relaxed);
        state.rebuilds.fetch_add(2, Ordering::Relaxed);
        let text = metrics.encode().expect("encodes");
        let lines = lines(&text);
        for expected in [
            "isobar_xds_responses_total 3",
            "isobar_xds_acks_total 0",
            "isobar_xds_tls_handshake_failures_total 0",
            "isobar_endpoint_refreshes_total 0",
            "isobar_status_writes_total 0",
            "isobar_status_write_failures_total 0",
            "isobar_events_total 0",
            "isobar_event_failures_total 0",
            "isobar_rebuilds_total 2",
            "isobar_xds_streams 0",
            "isobar_xds_resources{type=\"cds\"} 0",
            "isobar_objects{status=\"valid\"} 0",
            "isobar_source_errors 0",
        ] {
            assert!(lines.contains(&expected), "no `{expected}` in:\n{text}");
        }
        assert!(
            text.contains("# TYPE isobar_rebuilds_total counter"),
            "{text}"
        );
    }

    #[test]
    fn rebuild_and_change_to_push_latencies_are_histograms() {
        let (metrics, _, state) = metrics();
        state.latency.rebuild.observe(0.003);
        state
            .latency
            .pushed(std::time::Instant::now() - std::time::Duration::from_millis(40));
        let text = metrics.encode().expect("encodes");
        let lines = lines(&text);
        for expected in [
            "isobar_rebuild_duration_seconds_count 1",
            "isobar_rebuild_duration_seconds_bucket{le=\"0.004\"} 1",
            "isobar_rebuild_duration_seconds_bucket{le=\"0.002\"} 0",
            "isobar_change_to_push_seconds_count 1",
            "isobar_change_to_push_seconds_bucket{le=\"0.032\"} 0",
            "isobar_change_to_push_seconds_bucket{le=\"0.064\"} 1",
        ] {
            assert!(lines.contains(&expected), "no `{expected}` in:\n{text}");
        }
        assert!(
            text.contains("# TYPE isobar_change_to_push_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn the_time_until_envoy_answers_a_response_is_a_histogram_by_type() {
        use crate::xds::report::Reporter;
        use crate::xds::sequence::{Answer, Update};
        let (metrics, stats, _) = metrics();
        let mut report = Reporter::new(&stats, 1);
        let update = |type_url| Update {
            type_url,
            nonce: "1".into(),
            version: "v1".into(),
            generation: 1,
            upserts: Vec::new(),
            removals: Vec::new(),
            state: Default::default(),
        };
        let ack = || Answer::Ack {
            version: "v1".into(),
            generation: 1,
        };
        report.sent(&update(type_url::CLUSTER), None, 10);
        report.sent(&update(type_url::ROUTE), None, 10);
        report.answer(type_url::CLUSTER, ack(), "");
        // An answer with no response awaiting it (a resumed stream) is not timed.
        report.answer(type_url::CLUSTER, ack(), "");
        let text = metrics.encode().expect("encodes");
        let lines = lines(&text);
        assert!(
            lines.contains(&"isobar_xds_answer_seconds_count{type=\"cluster\"} 1"),
            "{text}"
        );
        // The route response is still awaiting its answer.
        assert!(
            !text.contains("isobar_xds_answer_seconds_count{type=\"route\"}"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE isobar_xds_answer_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn nacks_are_labelled_by_resource_type() {
        let (metrics, stats, _) = metrics();
        for t in [type_url::ROUTE, type_url::ROUTE, type_url::SECRET] {
            stats.record_nack(Nack {
                resources: Vec::new(),
                node: "envoy".into(),
                type_url: t.into(),
                rejected_version: "2".into(),
                version_in_use: "1".into(),
                message: "rejected".into(),
                generation: 0,
            });
        }
        let text = metrics.encode().expect("encodes");
        let nacks: Vec<&str> = lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("isobar_xds_nacks_total"))
            .collect();
        assert_eq!(
            nacks,
            [
                "isobar_xds_nacks_total{type=\"cluster\"} 0",
                "isobar_xds_nacks_total{type=\"endpoint\"} 0",
                "isobar_xds_nacks_total{type=\"listener\"} 0",
                "isobar_xds_nacks_total{type=\"route\"} 2",
                "isobar_xds_nacks_total{type=\"secret\"} 1",
            ],
            "{text}"
        );
    }
}
