//! The metrics endpoint: a plain HTTP/1.1 listener polled by the control lcore
//! between its other duties (no extra runtime). `GET /metrics` answers the
//! Prometheus text format; anything else gets 404.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, String> {
        let listener = TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(MetricsServer { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Answers every waiting client; `render` produces the metrics text.
    pub fn poll(&self, mut render: impl FnMut() -> String) -> usize {
        let mut n = 0;
        while let Ok((stream, _)) = self.listener.accept() {
            if serve(stream, &mut render).is_ok() {
                n += 1;
            }
        }
        n
    }
}

fn serve(stream: TcpStream, render: &mut impl FnMut() -> String) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut w = stream;
    let path = request.split_whitespace().nth(1).unwrap_or("");
    if request.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
        let body = render();
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
    } else {
        w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn serves_metrics_and_404() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let get = |path: &str| {
                let mut s = TcpStream::connect(addr).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            };
            (get("/metrics"), get("/other"))
        });
        let t0 = std::time::Instant::now();
        let mut served = 0;
        while served < 2 && t0.elapsed() < Duration::from_secs(5) {
            served += server.poll(|| "rvs_up 1\n".to_string());
            std::thread::sleep(Duration::from_millis(5));
        }
        let (metrics, other) = client.join().unwrap();
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n") && metrics.ends_with("\r\n\r\nrvs_up 1\n"), "{metrics}");
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    }
}
