//! systemd's readiness protocol (sd_notify(3)) without libsystemd: a datagram
//! `READY=1` (or `STOPPING=1`, `RELOADING=1`) to the socket named by
//! `NOTIFY_SOCKET`, when systemd started rvsd with `Type=notify`. Nothing happens
//! otherwise.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` to systemd's notification socket, if there is one; an error is
/// logged, never fatal (rvsd runs the same without systemd).
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let path = path.to_string_lossy().into_owned();
    if let Err(e) = notify_socket(&path, state) {
        tracing::warn!(socket = %path, "sd_notify {state}: {e}");
    }
}

/// Sends `state` to the socket `path` (a leading `@`: an abstract name).
fn notify_socket(path: &str, state: &str) -> std::io::Result<()> {
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_the_socket_systemd_names() {
        let dir = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        notify_socket(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        // An abstract name, as systemd gives it.
        let name = format!("rvs-notify-test-{}", std::process::id());
        let abs = {
            use std::os::linux::net::SocketAddrExt;
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap()
        };
        abs.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        notify_socket(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
