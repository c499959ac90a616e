//! A bounded keep-alive request loop: one HTTP/1.1 connection to Envoy (a new one only if Envoy
//! closes it) sending `GET /` with a given Host until stopped, counting every answer. Used to show
//! that configuration changes (a route flipping between Services) cost no request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Bounds on the loop, whatever happens to whoever should stop it.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// At most this many exchanges.
    pub max_requests: u64,
    /// At most this long.
    pub max_time: Duration,
    /// Bound on one request/response exchange.
    pub exchange: Duration,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_requests: 1_000_000,
            max_time: Duration::from_secs(300),
            exchange: Duration::from_secs(5),
        }
    }
}

/// What the loop saw.
#[derive(Debug, Default, Clone)]
pub struct LoadCounts {
    /// 200 answers.
    pub ok: u64,
    /// Non-200 answers, by status.
    pub failed: BTreeMap<u16, u64>,
    /// Exchanges that ended without a response (connection closed, timeout, garbage).
    pub errors: Vec<String>,
    /// 200s by the `x-echo-backend` that answered them.
    pub by_backend: BTreeMap<String, u64>,
    /// TCP connections opened.
    pub connections: u64,
}

impl LoadCounts {
    /// Non-200 answers plus exchanges without an answer.
    pub fn failures(&self) -> u64 {
        self.failed.values().sum::<u64>() + self.errors.len() as u64
    }

    /// 200s answered by `backend`.
    pub fn by(&self, backend: &str) -> u64 {
        self.by_backend.get(backend).copied().unwrap_or(0)
    }

    /// One line: totals, per backend, failures, connections.
    pub fn summary(&self) -> String {
        let by: Vec<String> = self
            .by_backend
            .iter()
            .map(|(b, n)| format!("{b} {n}"))
            .collect();
        format!(
            "{} requests: {} answered 200 ({}), failed {:?}, errors {}, connections {}",
            self.ok + self.failures(),
            self.ok,
            by.join(", "),
            self.failed,
            self.errors.len(),
            self.connections
        )
    }
}

/// A running request loop; [`KeepAliveLoad::stop`] ends it and returns its counts.
pub struct KeepAliveLoad {
    stop: Arc<AtomicBool>,
    exchanges: Arc<AtomicU64>,
    task: JoinHandle<LoadCounts>,
}

impl KeepAliveLoad {
    /// Starts requesting `GET /` with `Host: host` from `addr` on a tokio task.
    pub fn start(addr: SocketAddr, host: &str, limits: LoadLimits) -> KeepAliveLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let exchanges = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(request_loop(
            addr,
            host.to_string(),
            limits,
            Arc::clone(&stop),
            Arc::clone(&exchanges),
        ));
        KeepAliveLoad {
            stop,
            exchanges,
            task,
        }
    }

    /// Exchanges attempted so far (answered or not): lets a test wait until the loop has run
    /// for a while before and after what it does.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// Stops the loop after its current exchange and returns what it counted.
    pub async fn stop(self) -> LoadCounts {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.await {
            Ok(counts) => counts,
            Err(e) => LoadCounts {
                errors: vec![format!("the request loop died: {e}")],
                ..LoadCounts::default()
            },
        }
    }
}

/// One HTTP/1.1 exchange on a kept-alive connection: status and `x-echo-backend`.
async fn exchange(
    conn: &mut BufReader<TcpStream>,
    host: &str,
) -> Result<(u16, Option<String>), String> {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
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

async fn request_loop(
    addr: SocketAddr,
    host: String,
    limits: LoadLimits,
    stop: Arc<AtomicBool>,
    exchanges: Arc<AtomicU64>,
) -> LoadCounts {
    let mut counts = LoadCounts::default();
    let started = Instant::now();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed)
        && n < limits.max_requests
        && started.elapsed() < limits.max_time
    {
        n += 1;
        exchanges.fetch_add(1, Ordering::Relaxed);
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
        match tokio::time::timeout(limits.exchange, exchange(c, &host)).await {
            Ok(Ok((200, backend))) => {
                counts.ok += 1;
                if let Some(b) = backend {
                    *counts.by_backend.entry(b).or_default() += 1;
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
                    .push(format!("no response within {:?}", limits.exchange));
                conn = None;
            }
        }
    }
    counts
}
