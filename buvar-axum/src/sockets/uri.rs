//! Socket URIs: `tcp://HOST:PORT` and `unix:///PATH`.

use std::{
    collections::HashSet,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
};

use super::SocketError;

/// Where to listen: a TCP address or a unix socket path.
///
/// Parsed from `tcp://:PORT` (all IPv4 interfaces), `tcp://HOST:PORT` (HOST is an
/// IP address or `localhost`), `tcp://[V6]:PORT` or `unix:///absolute/path`; its
/// [`Display`](fmt::Display) is the normalised form, used as the socket's name.
///
/// ```
/// use buvar_axum::sockets::SocketUri;
///
/// let uri: SocketUri = "tcp://:8080".parse()?;
/// assert_eq!(uri.to_string(), "tcp://0.0.0.0:8080");
/// let uri: SocketUri = "unix:///run/svc.sock".parse()?;
/// assert_eq!(uri, SocketUri::Unix("/run/svc.sock".into()));
/// # Ok::<(), buvar_axum::sockets::SocketError>(())
/// ```
///
/// More schemes may come, so a `match` outside this crate needs a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketUri {
    /// A TCP socket address.
    Tcp(SocketAddr),
    /// A unix stream socket at an absolute path.
    Unix(PathBuf),
}

impl SocketUri {
    /// A TCP address with port 0: each bind of it gets a new port the kernel picks, so two of
    /// them name two sockets.
    pub(crate) fn is_any_port(&self) -> bool {
        matches!(self, SocketUri::Tcp(addr) if addr.port() == 0)
    }
}

impl FromStr for SocketUri {
    type Err = SocketError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let malformed = |reason| SocketError::Malformed {
            uri: uri.to_owned(),
            reason,
        };
        if let Some(rest) = uri.strip_prefix("tcp://") {
            parse_tcp(rest).map(SocketUri::Tcp).map_err(malformed)
        } else if let Some(path) = uri.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(malformed("the path is empty"));
            }
            if !path.starts_with('/') {
                return Err(malformed(
                    "the path must be absolute, as in unix:///run/app.sock",
                ));
            }
            if path.ends_with('/') {
                return Err(malformed("the path names a directory"));
            }
            Ok(SocketUri::Unix(PathBuf::from(path)))
        } else {
            Err(SocketError::UnknownScheme {
                uri: uri.to_owned(),
            })
        }
    }
}

fn parse_tcp(rest: &str) -> Result<SocketAddr, &'static str> {
    if rest.contains(['/', '?', '#', '@']) {
        return Err("a tcp URI is only `tcp://HOST:PORT`, without path, query or user");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, port) = v6
            .split_once("]:")
            .ok_or("an IPv6 address needs a port, as in tcp://[::1]:8080")?;
        let ip = host
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "the text inside [...] is not an IPv6 address")?;
        (IpAddr::V6(ip), port)
    } else {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or("the port is missing, as in tcp://127.0.0.1:8080 or tcp://:8080")?;
        let ip = match host {
            "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            host => host
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| "the host is not an IPv4 address, `localhost` or [IPv6]")?,
        };
        (ip, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| "the port is not a number from 0 to 65535")?;
    Ok(SocketAddr::new(host, port))
}

impl fmt::Display for SocketUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketUri::Tcp(addr) => write!(f, "tcp://{addr}"),
            SocketUri::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Parses socket URIs, keeping the first of each normalised duplicate.
///
/// ```
/// use buvar_axum::sockets::parse_uris;
///
/// let uris = parse_uris(["tcp://:80", "tcp://0.0.0.0:80", "unix:///tmp/a.sock"])?;
/// assert_eq!(uris.len(), 2);
/// assert!(parse_uris(["http://:80"]).is_err());
/// # Ok::<(), buvar_axum::sockets::SocketError>(())
/// ```
pub fn parse_uris<I, S>(uris: I) -> Result<Vec<SocketUri>, SocketError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for uri in uris {
        let uri: SocketUri = uri.as_ref().trim().parse()?;
        if seen.insert(uri.clone()) {
            parsed.push(uri);
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<SocketUri, SocketError> {
        uri.parse()
    }

    #[test]
    fn port_only_means_all_ipv4_interfaces() {
        assert_eq!(
            parse("tcp://:5678").unwrap(),
            SocketUri::Tcp("0.0.0.0:5678".parse().unwrap())
        );
    }

    #[test]
    fn host_and_port_are_kept() {
        assert_eq!(
            parse("tcp://127.0.0.1:0").unwrap().to_string(),
            "tcp://127.0.0.1:0"
        );
        assert_eq!(
            parse("tcp://localhost:80").unwrap().to_string(),
            "tcp://127.0.0.1:80"
        );
    }

    #[test]
    fn ipv6_is_written_in_brackets() {
        let uri = parse("tcp://[::1]:8080").unwrap();
        assert_eq!(uri, SocketUri::Tcp("[::1]:8080".parse().unwrap()));
        assert_eq!(uri.to_string(), "tcp://[::1]:8080");
    }

    #[test]
    fn unix_path_round_trips() {
        let uri = parse("unix:///run/svc.sock").unwrap();
        assert_eq!(uri, SocketUri::Unix("/run/svc.sock".into()));
        assert_eq!(uri.to_string(), "unix:///run/svc.sock");
    }

    #[test]
    fn unknown_scheme_is_named() {
        let err = parse("http://:80").unwrap_err();
        assert!(matches!(err, SocketError::UnknownScheme { .. }));
        assert!(err.to_string().contains("`http://:80`"), "{err}");
    }

    #[test]
    fn malformed_uris_are_named_with_a_reason() {
        for bad in [
            "tcp://",
            "tcp://127.0.0.1",
            "tcp://127.0.0.1:http",
            "tcp://127.0.0.1:70000",
            "tcp://example.com:80",
            "tcp://[::1]",
            "tcp://[zz]:80",
            "tcp://:80/path",
            "unix://",
            "unix://relative.sock",
            "unix:///tmp/",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, SocketError::Malformed { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn duplicates_collapse_after_normalisation() {
        let uris = parse_uris([
            "tcp://:80",
            "tcp://0.0.0.0:80",
            " tcp://:80 ",
            "unix:///a.sock",
            "unix:///a.sock",
            "tcp://[::]:80",
        ])
        .unwrap();
        assert_eq!(
            uris.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["tcp://0.0.0.0:80", "unix:///a.sock", "tcp://[::]:80"]
        );
    }

    #[test]
    fn one_bad_uri_fails_the_list() {
        assert!(parse_uris(["tcp://:80", "udp://:53"]).is_err());
    }
}
