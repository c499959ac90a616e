#![cfg(feature = "e2e")]
//! Make-before-break against a real Envoy: a host's Ingress flips between two Services over and over
//! while a keep-alive client keeps requesting it, and not one request fails — the new cluster is warm
//! before the route uses it, and the old one goes only after the route stopped using it.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use common::{ingress_yaml, wait_routed_to, Fixture};

const HOST: &str = "flip.example.com";
/// How many times the Ingress switches Service.
const FLIPS: usize = 100;
/// Bounds on the request loop, whatever happens to the flips.
const LOOP_MAX_REQUESTS: u64 = 1_000_000;
const LOOP_MAX_TIME: Duration = Duration::from_secs(300);
/// Bound on one request/response exchange.
const EXCHANGE: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Counts {
    ok: u64,
    /// Non-200 answers, by status.
    failed: std::collections::BTreeMap<u16, u64>,
    /// Exchanges that ended without a response (connection closed, timeout, garbage).
    errors: Vec<String>,
    /// 200s answered by backend a and b.
    by_a: u64,
    by_b: u64,
    connections: u64,
}

impl Counts {
    fn failures(&self) -> u64 {
        self.failed.values().sum::<u64>() + self.errors.len() as u64
    }
}

/// One HTTP/1.1 exchange on a kept-alive connection: status and `x-echo-backend`.
async fn exchange(conn: &mut BufReader<TcpStream>) -> Result<(u16, Option<String>), String> {
    let request = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    conn.get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    conn.read_line(&mut line)
        .await
        .map_err(|e| format!("read status: {e}"))?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let (mut length, mut chunked, mut backend) = (0usize, false, None);
    loop {
        line.clear();
        conn.read_line(&mut line)
            .await
            .map_err(|e| format!("read header: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(format!("bad header {l:?}"));
        };
        let (name, value) = (name.to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse().map_err(|_| format!("{l:?}"))?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "x-echo-backend" => backend = Some(value.to_string()),
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)
                .await
                .map_err(|e| format!("read chunk: {e}"))?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| format!("{line:?}"))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk)
                .await
                .map_err(|e| format!("read chunk: {e}"))?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length];
        conn.read_exact(&mut body)
            .await
            .map_err(|e| format!("read body: {e}"))?;
    }
    Ok((status, backend))
}

/// Requests `HOST` over one keep-alive connection (a new one only if Envoy closes it) until `stop`,
/// or the loop's bounds.
async fn request_loop(addr: SocketAddr, stop: Arc<AtomicBool>) -> Counts {
    let mut counts = Counts::default();
    let started = Instant::now();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed)
        && n < LOOP_MAX_REQUESTS
        && started.elapsed() < LOOP_MAX_TIME
    {
        n += 1;
        if conn.is_none() {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    counts.connections += 1;
                    conn = Some(BufReader::new(tcp));
                }
                Err(e) => {
                    counts.errors.push(format!("connect: {e}"));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match tokio::time::timeout(EXCHANGE, exchange(c)).await {
            Ok(Ok((200, backend))) => {
                counts.ok += 1;
                match backend.as_deref() {
                    Some("a") => counts.by_a += 1,
                    Some("b") => counts.by_b += 1,
                    _ => {}
                }
            }
            Ok(Ok((status, _))) => *counts.failed.entry(status).or_default() += 1,
            Ok(Err(e)) => {
                counts.errors.push(e);
                conn = None;
            }
            Err(_) => {
                counts
                    .errors
                    .push(format!("no response within {EXCHANGE:?}"));
                conn = None;
            }
        }
    }
    counts
}

#[tokio::test]
async fn flipping_a_host_between_services_loses_no_request() {
    let mut f = Fixture::new();
    f.backend("a");
    f.backend("b");
    let ingress = |to: &str| ingress_yaml("flip", Some(HOST), &[("/", "Prefix", to)]);
    f.write("flip.yaml", &ingress("a"));
    let stack = f.start_stack().await;
    wait_routed_to(&stack, HOST, "/", "a").await;

    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn(request_loop(stack.http_addr(), Arc::clone(&stop)));
    let started = Instant::now();
    for i in 0..FLIPS {
        let to = if i % 2 == 0 { "b" } else { "a" };
        f.write("flip.yaml", &ingress(to));
        // Each flip is live before the next (polled, with a deadline).
        wait_routed_to(&stack, HOST, "/", to).await;
    }
    let flipping = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let counts = client.await.expect("the request loop");

    let no_cluster = stack
        .envoy
        .stat("http.ingress_http.no_cluster")
        .await
        .unwrap_or_else(|e| panic!("Envoy stat: {e}"))
        .unwrap_or(0);
    eprintln!(
        "{FLIPS} flips in {flipping:?}: {} requests answered 200 (a {}, b {}), failed {:?}, errors {}, connections {}; Envoy no_cluster {no_cluster}",
        counts.ok, counts.by_a, counts.by_b, counts.failed, counts.errors.len(), counts.connections
    );
    assert!(
        counts.by_a > 0 && counts.by_b > 0,
        "the loop should have seen both backends: {counts:?}"
    );
    assert_eq!(
        counts.failures(),
        0,
        "failed requests: {:?}, errors (first 5): {:?}",
        counts.failed,
        &counts.errors[..counts.errors.len().min(5)]
    );
    assert_eq!(no_cluster, 0, "http.ingress_http.no_cluster");
}
