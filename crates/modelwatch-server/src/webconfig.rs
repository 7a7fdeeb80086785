//! Module implementing the metrics listener's security: TLS, and basic or bearer
//! auth, set by a web-config file in the format of Prometheus' exporter-toolkit
//! (`--metrics-web-config`). See [`WebConfig`] for details.
//!
//! The keys are exporter-toolkit's, so a file written for node_exporter works here
//! when it uses only what modelwatch supports:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: NoClientCert # or VerifyClientCertIfGiven, RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt # needed by the two Verify types
//!   min_version: TLS12             # TLS12 or TLS13
//!   max_version: TLS13
//! http_server_config:
//!   http2: true                    # offered over TLS (ALPN)
//!   headers:
//!     X-Content-Type-Options: nosniff
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt, as `htpasswd -nBC 10 "" | tr -d ':\n'` prints
//! # modelwatch's extension (exporter-toolkit has no bearer tokens):
//! bearer_auth_tokens:
//!   prometheus: 9f86d081884c7d65...  # SHA-256 of the token in hex: `printf %s "$TOKEN" | sha256sum`
//! ```
//!
//! A key that is not in this list is refused, naming it. Keys that exporter-toolkit
//! has but modelwatch does not implement (`rate_limit`, `cipher_suites`,
//! `client_allowed_sans`...) are refused too, saying so, rather than ignored: a
//! security setting that silently does nothing is worse than an error.
//!
//! When users or tokens are configured, every request needs one of them: a wrong,
//! missing or malformed `Authorization` header gets 401 with `WWW-Authenticate`
//! and one JSON body that never says which part was wrong. Passwords are checked
//! with bcrypt (on the blocking pool), tokens by comparing SHA-256 digests in
//! constant time. A password that verified once is remembered as its SHA-256
//! digest, so a scrape every few seconds does not pay bcrypt each time.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq as _;

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "modelwatch metrics";

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A web-config file that cannot be used; the message names the key and the fix.
#[derive(Debug, thiserror::Error)]
#[error("web config {}: {message}", path.display())]
pub struct WebConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, naming the key (such as `tls_server_config.cert_file`).
    pub message: String,
}

/// The loaded, validated web-config: what the metrics listener serves with.
#[derive(Clone)]
pub struct WebConfig {
    path: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<Arc<Auth>>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl Default for WebConfig {
    /// Plain HTTP without auth: what the listener does with no web config.
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            tls: None,
            auth: None,
            headers: Arc::new(Vec::new()),
        }
    }
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints a hash or a key.
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.auth.as_ref().map_or(0, |a| a.users.len()),
            )
            .field(
                "bearer_auth_tokens",
                &self.auth.as_ref().map_or(0, |a| a.tokens.len()),
            )
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// Keys of exporter-toolkit's format that modelwatch refuses, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "rate_limit",
        "modelwatch has no rate limiter on the metrics listener; limit scrapers at the network or a proxy",
    ),
    (
        "tls_server_config.cipher_suites",
        "rustls offers only its own safe cipher suites; remove the key",
    ),
    (
        "tls_server_config.prefer_server_cipher_suites",
        "rustls picks the suite itself; remove the key",
    ),
    (
        "tls_server_config.curve_preferences",
        "rustls picks the key exchange itself; remove the key",
    ),
    (
        "tls_server_config.client_allowed_sans",
        "matching client certificate names is not implemented; trust only the clients' CA in client_ca_file",
    ),
];

struct Section<'a> {
    path: &'a Path,
    prefix: &'static str,
    map: serde_json::Map<String, Value>,
}

impl<'a> Section<'a> {
    fn new(
        path: &'a Path,
        prefix: &'static str,
        value: Value,
        known: &[&str],
    ) -> Result<Self, WebConfigError> {
        let map = match value {
            Value::Null => serde_json::Map::new(),
            Value::Object(map) => map,
            other => {
                return Err(error(
                    path,
                    format!(
                        "{} must be a map of keys, found {}",
                        if prefix.is_empty() {
                            "the file"
                        } else {
                            prefix
                        },
                        kind(&other)
                    ),
                ));
            }
        };
        for key in map.keys() {
            let full = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == full) {
                return Err(error(
                    path,
                    format!("key `{full}` is not supported by modelwatch: {why}"),
                ));
            }
            if !known.contains(&key.as_str()) {
                return Err(error(
                    path,
                    format!("unknown key `{full}` (known here: {})", known.join(", ")),
                ));
            }
        }
        Ok(Self { path, prefix, map })
    }

    fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, WebConfigError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(error(
                self.path,
                format!(
                    "`{}` must be a string, found {}",
                    self.name(key),
                    kind(&other)
                ),
            )),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, WebConfigError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(error(
                self.path,
                format!(
                    "`{}` must be true or false, found {}",
                    self.name(key),
                    kind(&other)
                ),
            )),
        }
    }

    fn take(&mut self, key: &str) -> Value {
        self.map.remove(key).unwrap_or(Value::Null)
    }

    /// A map of strings to strings (users, tokens, headers).
    fn string_map(&mut self, key: &str) -> Result<BTreeMap<String, String>, WebConfigError> {
        let name = self.name(key);
        match self.take(key) {
            Value::Null => Ok(BTreeMap::new()),
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    other => Err(error(
                        self.path,
                        format!("`{name}.{k}` must be a string, found {}", kind(&other)),
                    )),
                })
                .collect(),
            other => Err(error(
                self.path,
                format!("`{name}` must be a map, found {}", kind(&other)),
            )),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn error(path: &Path, message: impl Into<String>) -> WebConfigError {
    WebConfigError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl WebConfig {
    /// Reads and validates the file: certificates and keys are loaded, every bcrypt
    /// hash and token digest is checked. Relative file names are resolved against
    /// the web-config file's directory, as exporter-toolkit does.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error(path, format!("cannot read the file: {e}")))?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (which anchors relative file names).
    pub fn parse(path: &Path, text: &str) -> Result<Self, WebConfigError> {
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(text).map_err(|e| error(path, format!("not valid YAML: {e}")))?
        };
        let mut top = Section::new(
            path,
            "",
            value,
            &[
                "tls_server_config",
                "http_server_config",
                "basic_auth_users",
                "bearer_auth_tokens",
            ],
        )?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut http2 = true;
        let mut headers = Vec::new();
        let http = top.take("http_server_config");
        if !http.is_null() {
            let mut http = Section::new(path, "http_server_config", http, &["http2", "headers"])?;
            http2 = http.boolean("http2")?.unwrap_or(true);
            headers = response_headers(path, http.string_map("headers")?)?;
        }
        let tls = top.take("tls_server_config");
        let tls = if tls.is_null() {
            None
        } else {
            Some(Arc::new(tls_config(path, dir, tls, http2)?))
        };
        let users = top
            .string_map("basic_auth_users")?
            .into_iter()
            .map(|(user, hash)| {
                hash.parse::<bcrypt::HashParts>().map_err(|e| {
                    error(
                        path,
                        format!("`basic_auth_users.{user}` is not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"),
                    )
                })?;
                Ok((user, User { hash, verified: Mutex::new(None) }))
            })
            .collect::<Result<BTreeMap<_, _>, WebConfigError>>()?;
        let tokens = top
            .string_map("bearer_auth_tokens")?
            .into_iter()
            .map(|(name, digest)| {
                parse_digest(&digest).map(|d| (name.clone(), d)).ok_or_else(|| {
                    error(
                        path,
                        format!("`bearer_auth_tokens.{name}` is not a SHA-256 digest (64 hex digits); make one with `printf %s \"$TOKEN\" | sha256sum`"),
                    )
                })
            })
            .collect::<Result<Vec<_>, WebConfigError>>()?;
        let auth = if users.is_empty() && tokens.is_empty() {
            None
        } else {
            // Unknown users are checked against a hash of the same cost as the real
            // ones, so the answer takes as long as for a known user.
            let cost = users
                .values()
                .filter_map(|u| u.hash.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            let dummy_hash = bcrypt::hash("modelwatch: no such user", cost)
                .map_err(|e| error(path, format!("cannot prepare bcrypt: {e}")))?;
            Some(Arc::new(Auth {
                users,
                tokens,
                dummy_hash,
            }))
        };
        Ok(Self {
            path: path.to_path_buf(),
            tls,
            auth,
            headers: Arc::new(headers),
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the listener speaks TLS (`https`).
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether requests need credentials.
    pub fn requires_auth(&self) -> bool {
        self.auth.is_some()
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls() { "https" } else { "http" }
    }

    /// Wraps a router: credentials are checked before any route runs, and the
    /// configured response headers are added to every answer.
    pub fn protect(&self, router: axum::Router) -> axum::Router {
        if self.auth.is_none() && self.headers.is_empty() {
            return router;
        }
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            authorize,
        ))
    }

    /// Serves `router` on `listener` until `shutdown` resolves: over TLS when the
    /// file has `tls_server_config`, else plain HTTP.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        router: axum::Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.protect(router);
        match &self.tls {
            Some(tls) => {
                let listener = TlsListener::new(listener, tls.clone())?;
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
    }
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The response headers exporter-toolkit allows, with its value checks.
fn response_headers(
    path: &Path,
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    const ALLOWED: [&str; 5] = [
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "X-XSS-Protection",
        "Strict-Transport-Security",
    ];
    let mut out = Vec::new();
    for (name, value) in headers {
        let Some(canonical) = ALLOWED.iter().find(|a| a.eq_ignore_ascii_case(&name)) else {
            return Err(error(
                path,
                format!(
                    "unknown key `http_server_config.headers.{name}` (known here: {})",
                    ALLOWED.join(", ")
                ),
            ));
        };
        if value.is_empty() {
            continue;
        }
        let allowed_values: &[&str] = match *canonical {
            "X-Frame-Options" => &["deny", "sameorigin"],
            "X-Content-Type-Options" => &["nosniff"],
            _ => &[],
        };
        if !allowed_values.is_empty()
            && !allowed_values
                .iter()
                .any(|v| v.eq_ignore_ascii_case(&value))
        {
            return Err(error(
                path,
                format!(
                    "`http_server_config.headers.{canonical}` must be one of {}, found {value:?}",
                    allowed_values.join(", ")
                ),
            ));
        }
        let header_value = HeaderValue::from_str(&value).map_err(|_| {
            error(
                path,
                format!("`http_server_config.headers.{canonical}` is not a valid header value"),
            )
        })?;
        out.push((HeaderName::from_static(lower(canonical)), header_value));
    }
    Ok(out)
}

fn lower(canonical: &str) -> &'static str {
    match canonical {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

fn tls_config(
    path: &Path,
    dir: &Path,
    value: Value,
    http2: bool,
) -> Result<rustls::ServerConfig, WebConfigError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut tls = Section::new(
        path,
        "tls_server_config",
        value,
        &[
            "cert_file",
            "key_file",
            "cert",
            "key",
            "client_auth_type",
            "client_ca_file",
            "client_ca",
            "min_version",
            "max_version",
        ],
    )?;
    // One source per PEM item: a file (resolved against the web-config's
    // directory) or the PEM text inline, never both.
    let mut pem = |file_key: &str,
                   inline_key: &str|
     -> Result<Option<(String, Vec<u8>)>, WebConfigError> {
        let file = tls.string(file_key)?;
        let inline = tls.string(inline_key)?;
        match (file, inline) {
            (Some(_), Some(_)) => Err(error(
                path,
                format!(
                    "give either `tls_server_config.{file_key}` or `tls_server_config.{inline_key}`, not both"
                ),
            )),
            (Some(file), None) => {
                let full = dir.join(&file);
                let bytes = std::fs::read(&full).map_err(|e| {
                    error(
                        path,
                        format!(
                            "`tls_server_config.{file_key}`: cannot read {}: {e}",
                            full.display()
                        ),
                    )
                })?;
                Ok(Some((
                    format!("tls_server_config.{file_key} ({})", full.display()),
                    bytes,
                )))
            }
            (None, Some(text)) => Ok(Some((
                format!("tls_server_config.{inline_key}"),
                text.into_bytes(),
            ))),
            (None, None) => Ok(None),
        }
    };
    let cert = pem("cert_file", "cert")?;
    let key = pem("key_file", "key")?;
    let client_ca = pem("client_ca_file", "client_ca")?;
    let (Some((cert_name, cert)), Some((key_name, key))) = (cert, key) else {
        return Err(error(
            path,
            "`tls_server_config` needs both `cert_file` and `key_file` (or inline `cert` and `key`)",
        ));
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| error(path, format!("{cert_name}: not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(error(
            path,
            format!("{cert_name}: holds no PEM certificate"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| error(path, format!("{key_name}: not a PEM private key: {e}")))?;

    let version = |tls: &mut Section<'_>, key: &str| -> Result<Option<u8>, WebConfigError> {
        match tls.string(key)?.as_deref() {
            None => Ok(None),
            Some("TLS12") => Ok(Some(12)),
            Some("TLS13") => Ok(Some(13)),
            Some(v @ ("TLS10" | "TLS11")) => Err(error(
                path,
                format!(
                    "`tls_server_config.{key}: {v}` is not supported: rustls speaks TLS12 and TLS13 only"
                ),
            )),
            Some(other) => Err(error(
                path,
                format!("`tls_server_config.{key}` must be TLS12 or TLS13, found {other:?}"),
            )),
        }
    };
    let min = version(&mut tls, "min_version")?.unwrap_or(12);
    let max = version(&mut tls, "max_version")?.unwrap_or(13);
    if min > max {
        return Err(error(
            path,
            "`tls_server_config.min_version` is above `max_version`",
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, v)| v)
            .collect();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| error(path, format!("TLS versions: {e}")))?;
    let auth_type = tls.string("client_auth_type")?;
    let verify = match auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => None,
        "VerifyClientCertIfGiven" => Some(false),
        "RequireAndVerifyClientCert" => Some(true),
        t @ ("RequestClientCert" | "RequireAnyClientCert") => {
            return Err(error(
                path,
                format!(
                    "`tls_server_config.client_auth_type: {t}` is not supported: it accepts client certificates that nobody checks; use RequireAndVerifyClientCert with client_ca_file"
                ),
            ));
        }
        other => {
            return Err(error(
                path,
                format!(
                    "`tls_server_config.client_auth_type` must be NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert, found {other:?}"
                ),
            ));
        }
    };
    let builder = match (verify, client_ca) {
        (None, None) => builder.with_no_client_auth(),
        (None, Some(_)) => {
            return Err(error(
                path,
                "`tls_server_config.client_ca_file` is set but `client_auth_type` is NoClientCert; set client_auth_type: RequireAndVerifyClientCert",
            ));
        }
        (Some(_), None) => {
            return Err(error(
                path,
                "this `tls_server_config.client_auth_type` verifies client certificates, so it needs `client_ca_file` (or inline `client_ca`)",
            ));
        }
        (Some(required), Some((ca_name, ca))) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(&ca) {
                let ca =
                    ca.map_err(|e| error(path, format!("{ca_name}: not a PEM certificate: {e}")))?;
                roots.add(ca).map_err(|e| {
                    error(path, format!("{ca_name}: not a usable CA certificate: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(error(path, format!("{ca_name}: holds no PEM certificate")));
            }
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if !required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| error(path, format!("{ca_name}: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        error(
            path,
            format!("{cert_name} and {key_name} do not make a usable certificate: {e}"),
        )
    })?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

struct User {
    hash: String,
    /// SHA-256 of the last password that bcrypt accepted for this user.
    verified: Mutex<Option<[u8; 32]>>,
}

struct Auth {
    users: BTreeMap<String, User>,
    tokens: Vec<(String, [u8; 32])>,
    dummy_hash: String,
}

/// What the `Authorization` header held.
enum Credential {
    Basic { user: String, password: Vec<u8> },
    Bearer(Vec<u8>),
}

fn credential(headers: &HeaderMap) -> Result<Credential, &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("no Authorization header")?;
    let value = value.to_str().map_err(|_| "Authorization is not ASCII")?;
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or("no scheme in Authorization")?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| "Basic credentials are not base64")?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or("Basic credentials have no colon")?;
        let user = std::str::from_utf8(&decoded[..colon])
            .map_err(|_| "Basic user is not UTF-8")?
            .to_string();
        Ok(Credential::Basic {
            user,
            password: decoded[colon + 1..].to_vec(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err("empty bearer token");
        }
        Ok(Credential::Bearer(rest.as_bytes().to_vec()))
    } else {
        Err("unknown Authorization scheme")
    }
}

impl Auth {
    /// Whether the credential is valid; the reason for a refusal is only logged.
    async fn check(self: &Arc<Self>, credential: Credential) -> bool {
        match credential {
            Credential::Bearer(token) => {
                let digest: [u8; 32] = Sha256::digest(&token).into();
                // Every configured digest is compared, with no early exit.
                let mut matched = subtle::Choice::from(0);
                for (_, known) in &self.tokens {
                    matched |= known.ct_eq(&digest);
                }
                bool::from(matched)
            }
            Credential::Basic { user, password } => {
                let digest: [u8; 32] = Sha256::digest(&password).into();
                let cached = self
                    .users
                    .get(&user)
                    .and_then(|known| known.verified.lock().map(|c| *c).unwrap_or_default());
                if cached.is_some_and(|cached| bool::from(cached.ct_eq(&digest))) {
                    return true;
                }
                let auth = self.clone();
                let verified = tokio::task::spawn_blocking(move || {
                    let (hash, known) = match auth.users.get(&user) {
                        Some(u) => (u.hash.as_str(), true),
                        None => (auth.dummy_hash.as_str(), false),
                    };
                    let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known;
                    let user = auth.users.get(&user).filter(|_| ok);
                    if let Some(mut cache) = user.and_then(|u| u.verified.lock().ok()) {
                        *cache = Some(digest);
                    }
                    ok
                })
                .await;
                verified.unwrap_or(false)
            }
        }
    }

    fn challenges(&self) -> Vec<HeaderValue> {
        let mut out = Vec::new();
        if !self.users.is_empty() {
            out.push(HeaderValue::from_static(
                "Basic realm=\"modelwatch metrics\", charset=\"UTF-8\"",
            ));
        }
        if !self.tokens.is_empty() {
            out.push(HeaderValue::from_static(
                "Bearer realm=\"modelwatch metrics\"",
            ));
        }
        out
    }
}

/// The middleware behind [`WebConfig::protect`].
async fn authorize(State(config): State<WebConfig>, request: Request, next: Next) -> Response {
    let mut response = match &config.auth {
        None => next.run(request).await,
        Some(auth) => {
            let allowed = match credential(request.headers()) {
                Ok(credential) => auth.check(credential).await,
                Err(reason) => {
                    tracing::debug!(reason, "metrics request refused");
                    false
                }
            };
            if allowed {
                next.run(request).await
            } else {
                unauthorized(auth)
            }
        }
    };
    for (name, value) in config.headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

fn unauthorized(auth: &Auth) -> Response {
    let body = serde_json::json!({"error": {
        "type": "unauthorized",
        "message": "this endpoint needs valid credentials (basic or bearer, as its web config sets)",
    }});
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    for challenge in auth.challenges() {
        response
            .headers_mut()
            .append(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// A TCP listener whose connections are TLS: handshakes run in their own tasks
/// (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow client delays no other, and a
/// failed handshake is logged and dropped.
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish()
    }
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`.
    pub fn new(
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "metrics listener cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ends only when aborted by our own drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn load(text: &str) -> Result<WebConfig, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "web.yml", text);
        WebConfig::load(&path).map_err(|e| e.to_string())
    }

    fn certificate(dir: &Path) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        write(dir, "server.crt", &cert.cert.pem());
        write(dir, "server.key", &cert.key_pair.serialize_pem());
    }

    const TOKEN: &str = "s3cr3t-token-for-tests";

    fn protected() -> (WebConfig, axum::Router) {
        let hash = bcrypt::hash("right horse", 4).expect("hash");
        let digest: String = Sha256::digest(TOKEN.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let config = load(&format!(
            "basic_auth_users:\n  prometheus: {hash}\nbearer_auth_tokens:\n  scraper: {digest}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ))
        .expect("valid");
        let router =
            config.protect(axum::Router::new().route("/metrics", get(|| async { "up 1\n" })));
        (config, router)
    }

    async fn call(
        router: &axum::Router,
        authorization: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = axum::http::Request::get("/metrics");
        if let Some(a) = authorization {
            request = request.header(header::AUTHORIZATION, a);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[tokio::test]
    async fn right_credentials_pass_and_every_refusal_looks_the_same() {
        let (_, router) = protected();
        let (status, headers, body) =
            call(&router, Some(&basic("prometheus", "right horse"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "up 1\n");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        // Again: served from the verified-password cache, same answer.
        let (status, _, _) = call(&router, Some(&basic("prometheus", "right horse"))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(&router, Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(&router, Some(&format!("bearer {TOKEN}"))).await;
        assert_eq!(status, StatusCode::OK, "schemes are case-insensitive");

        let refused = [
            None,
            Some(basic("prometheus", "wrong horse")),
            Some(basic("prometheus", "right horse ")),
            Some(basic("nobody", "right horse")),
            Some(basic("", "")),
            Some("Basic".to_string()),
            Some("Basic !!!not-base64!!!".to_string()),
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("no colon")
            )),
            Some("Bearer".to_string()),
            Some("Bearer wrong-token".to_string()),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Digest {TOKEN}")),
            Some("garbage".to_string()),
        ];
        let mut bodies = std::collections::BTreeSet::new();
        for authorization in &refused {
            let (status, headers, body) = call(&router, authorization.as_deref()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
            let challenges: Vec<&str> = headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            assert_eq!(
                challenges,
                [
                    "Basic realm=\"modelwatch metrics\", charset=\"UTF-8\"",
                    "Bearer realm=\"modelwatch metrics\""
                ],
                "{authorization:?}"
            );
            assert_eq!(headers["x-content-type-options"], "nosniff");
            let json: Value = serde_json::from_str(&body).expect("a JSON body");
            assert_eq!(json["error"]["type"], "unauthorized");
            bodies.insert(body);
        }
        assert_eq!(
            bodies.len(),
            1,
            "refusals must not tell which part was wrong: {bodies:?}"
        );
    }

    #[tokio::test]
    async fn a_non_ascii_header_is_refused_without_a_panic() {
        let (_, router) = protected();
        let request = axum::http::Request::get("/metrics")
            .header(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(b"Basic \xff\xfe").expect("opaque bytes"),
            )
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn an_empty_file_means_plain_http_without_auth() {
        let config = load("").expect("empty is valid");
        assert!(!config.tls() && !config.requires_auth());
        assert_eq!(config.scheme(), "http");
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        for (text, expected) in [
            ("tls_server_confg: {}\n", "unknown key `tls_server_confg`"),
            (
                "basic_auth_users:\n  bob: not-a-hash\n",
                "`basic_auth_users.bob` is not a bcrypt hash",
            ),
            (
                "basic_auth_users:\n  bob: 3\n",
                "`basic_auth_users.bob` must be a string",
            ),
            (
                "basic_auth_users: [bob]\n",
                "`basic_auth_users` must be a map",
            ),
            (
                "bearer_auth_tokens:\n  ci: abc\n",
                "`bearer_auth_tokens.ci` is not a SHA-256 digest",
            ),
            (
                "rate_limit:\n  interval: 1s\n",
                "key `rate_limit` is not supported",
            ),
            (
                "http_server_config:\n  http3: true\n",
                "unknown key `http_server_config.http3`",
            ),
            (
                "http_server_config:\n  http2: yes please\n",
                "`http_server_config.http2` must be true or false",
            ),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: me\n",
                "unknown key `http_server_config.headers.X-Powered-By`",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "must be one of deny, sameorigin",
            ),
            (
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
                "`tls_server_config.cert_file`: cannot read",
            ),
            (
                "tls_server_config:\n  key: inline\n",
                "needs both `cert_file` and `key_file`",
            ),
            (
                "tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "key `tls_server_config.cipher_suites` is not supported",
            ),
            (
                "tls_server_config:\n  certfile: x\n",
                "unknown key `tls_server_config.certfile`",
            ),
            ("- a\n- b\n", "the file must be a map"),
            ("tls_server_config: [\n", "not valid YAML"),
        ] {
            let error = load(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.starts_with("web config "), "{error}");
        }
    }

    #[test]
    fn tls_settings_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        certificate(dir.path());
        let base = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
        let web = |extra: &str| {
            let path = write(dir.path(), "web.yml", &format!("{base}{extra}"));
            WebConfig::load(&path).map_err(|e| e.to_string())
        };
        let config = web("").expect("relative to the file's directory");
        assert!(config.tls());
        assert_eq!(config.scheme(), "https");
        assert!(web("  min_version: TLS13\n").is_ok());
        for (extra, expected) in [
            (
                "  min_version: TLS10\n",
                "rustls speaks TLS12 and TLS13 only",
            ),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "above `max_version`",
            ),
            ("  max_version: SSL3\n", "must be TLS12 or TLS13"),
            (
                "  client_auth_type: RequireAnyClientCert\n",
                "not supported",
            ),
            ("  client_auth_type: Sometimes\n", "must be NoClientCert"),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n",
                "needs `client_ca_file`",
            ),
            (
                "  client_ca_file: server.crt\n",
                "client_auth_type` is NoClientCert",
            ),
            (
                "  cert: inline\n",
                "either `tls_server_config.cert_file` or `tls_server_config.cert`",
            ),
        ] {
            let error = web(extra).expect_err(extra);
            assert!(error.contains(expected), "{extra:?}: {error}");
        }
        // A key that does not belong to the certificate.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        write(dir.path(), "other.key", &other.key_pair.serialize_pem());
        let path = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
        );
        let error = WebConfig::load(&path)
            .expect_err("mismatched key")
            .to_string();
        assert!(
            error.contains("do not make a usable certificate"),
            "{error}"
        );
        // Not PEM at all.
        let path = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: web.yml\n  key_file: server.key\n",
        );
        let error = WebConfig::load(&path).expect_err("not PEM").to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let (config, _) = protected();
        let text = format!("{config:?}");
        assert!(!text.contains("$2"), "{text}");
        assert!(text.contains("basic_auth_users: 1"), "{text}");
    }
}
