//! A service's health check as `[service.check]` writes it, with keepalived's
//! option names and defaults, turned into the checker's spec.

use super::schema::RawService;
use super::validate::{parse_forward, parse_ip};
use super::ConfigError;
use crate::control::health::{CheckSpec, Kind};

pub(super) fn check_spec(i: usize, s: &RawService) -> Result<Option<CheckSpec>, ConfigError> {
    let key = |k: &str| format!("service[{i}].check.{k}");
    let sorry = match &s.sorry_server {
        None => None,
        Some(v) => {
            let (a, p) = v.rsplit_once(':').ok_or_else(|| {
                ConfigError::new(format!("service[{i}].sorry_server"), format!("\"{v}\" is not address:port"))
            })?;
            let a = a.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(a);
            let addr = parse_ip(&format!("service[{i}].sorry_server"), a)?;
            let port = p.parse::<u16>().map_err(|_| {
                ConfigError::new(format!("service[{i}].sorry_server"), format!("\"{v}\" is not address:port"))
            })?;
            let fwd =
                parse_forward(&format!("service[{i}].sorry_forward"), s.sorry_forward.as_deref().unwrap_or("masq"))?;
            Some((addr, port, fwd))
        }
    };
    let Some(c) = &s.check else {
        if sorry.is_some() {
            return Err(ConfigError::new(
                format!("service[{i}].sorry_server"),
                "needs a [service.check] to know when the pool is down",
            ));
        }
        return Ok(None);
    };
    let kind = match c.kind.as_str() {
        "tcp_check" => Kind::Tcp,
        "http_get" => {
            let status = match c.status_code.as_deref() {
                None => (200, 299),
                Some(t) => {
                    let bad =
                        || ConfigError::new(key("status_code"), format!("\"{t}\" is not a code or a range lo-hi"));
                    match t.split_once('-') {
                        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                        None => {
                            let v: u16 = t.parse().map_err(|_| bad())?;
                            (v, v)
                        }
                    }
                }
            };
            if let Some(d) = &c.digest {
                if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ConfigError::new(key("digest"), "not an MD5 digest (32 hex digits)"));
                }
            }
            if !c.path.starts_with('/') {
                return Err(ConfigError::new(key("path"), format!("\"{}\" does not start with /", c.path)));
            }
            Kind::Http { path: c.path.clone(), status, digest: c.digest.clone() }
        }
        "misc_check" => Kind::Misc {
            command: c.misc_path.clone().ok_or_else(|| ConfigError::new(key("misc_path"), "missing"))?,
            timeout_s: c.misc_timeout.unwrap_or(c.delay_loop).max(1),
            dynamic: c.misc_dynamic,
        },
        other => {
            return Err(ConfigError::new(key("type"), format!("\"{other}\" is not tcp_check, http_get or misc_check")))
        }
    };
    if c.delay_loop == 0 {
        return Err(ConfigError::new(key("delay_loop"), "must be at least 1 second"));
    }
    Ok(Some(CheckSpec {
        kind,
        delay_loop_s: c.delay_loop,
        connect_timeout_s: c.connect_timeout.max(1),
        connect_port: c.connect_port,
        retry: c.retry,
        delay_before_retry_s: c.delay_before_retry,
        inhibit_on_failure: c.inhibit_on_failure,
        alpha: c.alpha,
        quorum: s.quorum,
        hysteresis: s.hysteresis,
        sorry_server: sorry,
    }))
}
