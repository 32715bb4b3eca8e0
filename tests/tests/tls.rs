//! `[http.tls]` on a real pre-forked `Service` with two workers, with a rustls client and
//! certificates made in the test (rcgen): ALPN h2 and http/1.1, mutual TLS, certificate and
//! client CA rotation without dropping a connection, a bad file at reload, and the start-up
//! errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use buvar_tests::service::{self, Service};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// An upper bound for what takes about a second: a loaded machine must not fail the test.
const WITHIN: Duration = Duration::from_secs(25);

/// A certificate authority of the test.
struct Authority {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: String,
}

/// A certificate and its key, as PEM and DER.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.clone().self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            params,
            key,
        }
    }

    fn issue(&self, common_name: &str, purpose: ExtendedKeyUsagePurpose) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "buvar tests");
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let issuer = self.params.clone().self_signed(&self.key).unwrap();
        let cert = params.signed_by(&key, &issuer, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// The server's files in a directory of their own.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces a file at once (write, then rename), as cert-manager's atomic writer does.
    fn put(&self, name: &str, content: &str) {
        let temporary = self.path(&format!(".{name}.tmp"));
        std::fs::write(&temporary, content).unwrap();
        std::fs::rename(&temporary, self.path(name)).unwrap();
    }

    fn install(&self, issued: &Issued) {
        self.put("tls.crt", &issued.cert_pem);
        self.put("tls.key", &issued.key_pem);
    }
}

fn config(files: &Files, extra: &str) -> String {
    format!(
        "[http]\nport = 0\nforks = 2\ngraceful_timeout = 5\n\
         [http.tls]\ncert = {:?}\nkey = {:?}\nreload_interval = \"100ms\"\n{extra}\n\
         [log]\nlevel = \"info\"\n",
        files.path("tls.crt"),
        files.path("tls.key"),
    )
}

fn client_config(ca: &Authority, alpn: &[&[u8]], identity: Option<&Issued>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(issued) => builder
            .with_client_auth_cert(
                vec![issued.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_der.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    // A resumed session shows the certificate of the session it resumes: every connection of
    // these tests makes a full handshake, so it sees the certificate the server uses now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

async fn connect(addr: &str, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WITHIN, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("the handshake ends in time")
}

/// The certificate the server presented on `stream`.
fn server_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// One HTTP/1.1 request on a kept-alive connection: the status and the body.
async fn http1_get(
    stream: &mut TlsStream<TcpStream>,
    path: &str,
) -> std::io::Result<(u16, String)> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = tokio::time::timeout(WITHIN, stream.read(&mut chunk))
            .await
            .expect("a response in time")?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let status = head[9..12].parse().expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a content-length");
    while received.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        assert!(n > 0, "the body ends early");
        received.extend_from_slice(&chunk[..n]);
    }
    Ok((
        status,
        String::from_utf8_lossy(&received[head_end..head_end + length]).into_owned(),
    ))
}

/// `GET path` on a new connection; a refusal during the handshake is an error. With TLS 1.3 the
/// client may finish its side of the handshake before the server checks its certificate: the
/// refusal then arrives as an alert instead of a response.
async fn get_on_new_connection(
    addr: &str,
    config: Arc<ClientConfig>,
    path: &str,
) -> std::io::Result<(u16, String)> {
    http1_get(&mut connect(addr, config).await?, path).await
}

async fn h2_get(stream: TlsStream<TcpStream>, path: &str) -> (u16, String) {
    let (client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("https://localhost{path}"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(WITHIN, response)
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk: Bytes = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8(text).unwrap())
}

#[tokio::test]
async fn alpn_chooses_h2_or_http1_over_tls() {
    let ca = Authority::new("buvar test CA");
    let files = Files::new();
    files.install(&ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth));
    let service = Service::start(&config(&files, ""), &[], 2);

    let h2 = connect(
        &service.addr,
        client_config(&ca, &[b"h2", b"http/1.1"], None),
    )
    .await
    .unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, pid) = h2_get(h2, "/pid").await;
    assert_eq!(status, 200);
    assert!(pid.parse::<u32>().is_ok(), "{pid}");

    let mut h1 = connect(&service.addr, client_config(&ca, &[b"http/1.1"], None))
        .await
        .unwrap();
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(http1_get(&mut h1, "/pid").await.unwrap().0, 200);
    // Without `client_ca` nobody has a client certificate: the extractor says so.
    let (status, body) = http1_get(&mut h1, "/client").await.unwrap();
    assert_eq!(status, 403, "{body}");

    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/pid", service.addr))
        .timeout(WITHIN)
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_certificate_and_refuses_a_client_without_one() {
    let ca = Authority::new("buvar test CA");
    let files = Files::new();
    files.install(&ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth));
    files.put("ca.crt", &ca.pem);
    let extra = format!("client_ca = {:?}", files.path("ca.crt"));
    let service = Service::start(&config(&files, &extra), &[], 2);

    let client = ca.issue("client-a", ExtendedKeyUsagePurpose::ClientAuth);
    let mut stream = connect(
        &service.addr,
        client_config(&ca, &[b"http/1.1"], Some(&client)),
    )
    .await
    .unwrap();
    let (status, subject) = http1_get(&mut stream, "/client").await.unwrap();
    assert_eq!(status, 200, "{subject}");
    assert!(subject.contains("CN=client-a"), "{subject}");

    let refused = get_on_new_connection(
        &service.addr,
        client_config(&ca, &[b"http/1.1"], None),
        "/client",
    )
    .await
    .expect_err("no response without a client certificate")
    .to_string();
    assert!(
        refused.contains("CertificateRequired") || refused.contains("certificate"),
        "{refused}"
    );

    // A certificate from another authority is refused as well.
    let stranger =
        Authority::new("another CA").issue("mallory", ExtendedKeyUsagePurpose::ClientAuth);
    let result = get_on_new_connection(
        &service.addr,
        client_config(&ca, &[b"http/1.1"], Some(&stranger)),
        "/client",
    )
    .await;
    assert!(result.is_err(), "{result:?}");

    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_rotated_client_ca_admits_its_clients_on_new_connections_and_a_bad_one_changes_nothing() {
    let ca = Authority::new("buvar test CA");
    let files = Files::new();
    files.install(&ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth));
    files.put("ca.crt", &ca.pem);
    let extra = format!("client_ca = {:?}", files.path("ca.crt"));
    let mut service = Service::start(&config(&files, &extra), &[], 2);
    let old_client = client_config(
        &ca,
        &[b"http/1.1"],
        Some(&ca.issue("client-a", ExtendedKeyUsagePurpose::ClientAuth)),
    );
    let new_ca = Authority::new("rotated client CA");
    let new_client = client_config(
        &ca,
        &[b"http/1.1"],
        Some(&new_ca.issue("client-b", ExtendedKeyUsagePurpose::ClientAuth)),
    );
    let addr = service.addr.clone();
    let get = |config: &Arc<ClientConfig>| get_on_new_connection(&addr, config.clone(), "/client");

    let refused = get(&new_client).await;
    assert!(
        refused.is_err(),
        "accepted before the rotation: {refused:?}"
    );
    // Connections of the old CA's client, open across the rotation, on both workers.
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&service.addr, old_client.clone()).await.unwrap();
        assert_eq!(http1_get(&mut stream, "/client").await.unwrap().0, 200);
        open.push(stream);
    }

    files.put("ca.crt", &new_ca.pem);
    service.wait_lines("TLS client CAs reloaded", 2);
    for _ in 0..4 {
        let (status, subject) = get(&new_client).await.expect("accepted after the rotation");
        assert_eq!(status, 200, "{subject}");
        assert!(subject.contains("CN=client-b"), "{subject}");
        let refused = get(&old_client).await;
        assert!(
            refused.is_err(),
            "the replaced CA still admits: {refused:?}"
        );
    }
    for stream in &mut open {
        let (status, subject) = http1_get(stream, "/client").await.unwrap();
        assert_eq!(status, 200, "{subject}");
        assert!(subject.contains("CN=client-a"), "{subject}");
    }

    // A file that holds no certificate: the CAs in use stay, and the log says why.
    files.put("ca.crt", "not a certificate\n");
    service.wait_lines("TLS client CAs not reloaded", 2);
    for _ in 0..4 {
        let (status, _) = get(&new_client).await.expect("the CAs in use stay");
        assert_eq!(status, 200);
    }
    let (status, stdout, _) = service.stop();
    assert!(status.success(), "{status}");
    assert!(stdout.contains("TLS client CA file"), "{stdout}");
}

#[tokio::test]
async fn a_rotated_certificate_reaches_new_connections_while_open_ones_keep_working() {
    let ca = Authority::new("buvar test CA");
    let files = Files::new();
    let first = ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    files.install(&first);
    let mut service = Service::start(&config(&files, ""), &[], 2);
    let config = client_config(&ca, &[b"http/1.1"], None);

    // A few connections made before, so that both workers hold some.
    let mut before = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&service.addr, config.clone()).await.unwrap();
        assert_eq!(server_certificate(&stream), first.der);
        assert_eq!(http1_get(&mut stream, "/pid").await.unwrap().0, 200);
        before.push(stream);
    }

    let second = ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    files.install(&second);
    service.wait_lines("TLS certificate reloaded", 2);
    for _ in 0..4 {
        let stream = connect(&service.addr, config.clone()).await.unwrap();
        assert_eq!(server_certificate(&stream), second.der);
    }
    for stream in &mut before {
        assert_eq!(http1_get(stream, "/pid").await.unwrap().0, 200);
    }

    // A key that does not belong to the certificate: the one in use stays, and the log says
    // why without the key's contents.
    let stray = ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    // Every earlier line was read: each worker's failure to pair the new certificate with
    // the old key (the files changed one after the other) came before its reload.
    let refused = "TLS certificate not reloaded";
    let earlier = service
        .stdout
        .iter()
        .filter(|line| line.contains(refused))
        .count();
    files.put("tls.key", &stray.key_pem);
    service.wait_lines(refused, earlier + 2);
    for _ in 0..4 {
        let mut stream = connect(&service.addr, config.clone()).await.unwrap();
        assert_eq!(server_certificate(&stream), second.der);
        assert_eq!(http1_get(&mut stream, "/pid").await.unwrap().0, 200);
    }
    let (status, stdout, stderr) = service.stop();
    assert!(status.success(), "{status}");
    assert_no_key_material(&stray.key_pem, &stdout);
    assert_no_key_material(&stray.key_pem, &stderr);
    assert!(
        stdout.contains("does not belong to the certificate"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_closed_and_others_are_served() {
    let ca = Authority::new("buvar test CA");
    let files = Files::new();
    files.install(&ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth));
    let service = Service::start(
        &config(&files, ""),
        &[("SVC_HTTP_HEADER_READ_TIMEOUT", "1")],
        2,
    );
    let mut silent = TcpStream::connect(&service.addr).await.unwrap();
    let mut garbage = TcpStream::connect(&service.addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut stream = connect(&service.addr, client_config(&ca, &[b"http/1.1"], None))
        .await
        .unwrap();
    assert_eq!(http1_get(&mut stream, "/pid").await.unwrap().0, 200);
    // The header read timeout bounds the handshake: the server closes the silent connection.
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(WITHIN, silent.read(&mut buffer))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Plain HTTP is answered with a TLS alert at most, then closed; never served.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WITHIN, garbage.read_to_end(&mut answer))
        .await
        .expect("the server closes a plain-text connection");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

/// No line of the key's base64 body appears in `output`.
fn assert_no_key_material(key_pem: &str, output: &str) {
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!output.contains(line), "key material in the output");
    }
}

/// Runs the service with `[http.tls]` as given and expects it to refuse to start: exit 2,
/// no worker serving, and the message on stderr.
fn refused_start(files: &Files, extra: &str) -> String {
    let output = service::run(&config(files, extra), &[], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        !stdout.contains("\"serving\""),
        "a worker served:\n{stdout}"
    );
    stderr
}

#[test]
fn a_missing_unreadable_or_mismatched_certificate_or_key_stops_the_start() {
    let ca = Authority::new("buvar test CA");
    let files = Files::new();
    let stderr = refused_start(&files, "");
    assert!(
        stderr.contains("cannot read the TLS certificate file")
            && stderr.contains(&display(&files.path("tls.crt"))),
        "{stderr}"
    );

    let issued = ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    files.put("tls.crt", &issued.cert_pem);
    files.put("tls.key", "SECRET-KEY-MATERIAL, not PEM");
    let stderr = refused_start(&files, "");
    assert!(
        stderr.contains("TLS private key file")
            && stderr.contains(&display(&files.path("tls.key"))),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");

    let other = ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    files.put("tls.key", &other.key_pem);
    let stderr = refused_start(&files, "");
    assert!(
        stderr.contains("does not belong to the certificate"),
        "{stderr}"
    );
    assert_no_key_material(&other.key_pem, &stderr);

    files.put("tls.key", &issued.key_pem);
    files.put("tls.crt", "not a certificate");
    let stderr = refused_start(&files, "");
    assert!(
        stderr.contains("holds no PEM certificate")
            && stderr.contains(&display(&files.path("tls.crt"))),
        "{stderr}"
    );

    files.install(&issued);
    let stderr = refused_start(
        &files,
        &format!("client_ca = {:?}", files.path("missing-ca.crt")),
    );
    assert!(stderr.contains("TLS client CA file"), "{stderr}");
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
