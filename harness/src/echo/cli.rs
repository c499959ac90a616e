//! The `isobar-echo` command line: `--name NAME --listen ADDR [--tls-cert F --tls-key F]`.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Parsed command line of the echo binary.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EchoArgs {
    name: String,
    listen: String,
    tls: Option<(PathBuf, PathBuf)>,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<EchoArgs> {
    let usage = "usage: isobar-echo --name NAME --listen ADDR [--tls-cert FILE --tls-key FILE]";
    let (mut name, mut listen, mut cert, mut key) = (None, None, None, None);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--name" => &mut name,
            "--listen" => &mut listen,
            "--tls-cert" => &mut cert,
            "--tls-key" => &mut key,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown argument {other:?}; {usage}"
                )))
            }
        };
        *slot = Some(
            it.next()
                .ok_or_else(|| Error::Invalid(format!("{flag} needs a value; {usage}")))?,
        );
    }
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        _ => {
            return Err(Error::Invalid(format!(
                "--tls-cert and --tls-key go together; {usage}"
            )))
        }
    };
    Ok(EchoArgs {
        name: name.ok_or_else(|| Error::Invalid(format!("--name is required; {usage}")))?,
        listen: listen.ok_or_else(|| Error::Invalid(format!("--listen is required; {usage}")))?,
        tls,
    })
}

async fn run(args: EchoArgs) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Error::io(format!("binding {}", args.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    // The harness learns the port from this exact line.
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {addr}")
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("writing the listening line", e))?;
    drop(out);
    super::serve(args.name, listener, args.tls).await
}

/// Entry point of the `isobar-echo` binary: parses `std::env::args`, binds, prints
/// `listening on <ip:port>`, then serves until killed. Exits with status 2 on any error
/// (this is the binary's edge, so exiting here is intended).
pub fn main_from_args() {
    let result = parse(std::env::args().skip(1)).and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the tokio runtime", e))?
            .block_on(run(args))
    });
    if let Err(e) = result {
        eprintln!("isobar-echo: {e}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_flags() {
        let a = parse(args("--name a --listen 127.0.0.1:0")).unwrap();
        assert_eq!(a.name, "a");
        assert_eq!(a.listen, "127.0.0.1:0");
        assert!(a.tls.is_none());
        let a = parse(args("--listen x --name b --tls-cert c --tls-key k")).unwrap();
        assert_eq!(a.tls, Some((PathBuf::from("c"), PathBuf::from("k"))));
        assert!(parse(args("--name a")).is_err());
        assert!(parse(args("--name a --listen x --tls-cert c")).is_err());
        assert!(parse(args("--bogus")).is_err());
    }
}
