//! Configuration: embedded defaults, overridden by `picket.toml`, then by `PICKET_*`
//! environment variables, then by command-line flags. Unknown keys and bad values stop
//! startup with a message that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod values;
pub use values::{ByteSize, Duration, LogFormat, Security, SmtpUrl};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read { path: PathBuf, cause: String },
    #[error("config file {path}: {cause}")]
    Parse { path: PathBuf, cause: String },
    #[error("invalid value for {key}: {cause}")]
    Invalid { key: String, cause: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_addr: String,
    pub udp_addr: String,
    pub base_url: String,
    pub log: String,
    /// How long a stop (SIGTERM/SIGINT) waits for requests in flight and the queue.
    pub shutdown_timeout: Duration,
    pub limits: Limits,
    pub pipeline: Pipeline,
    pub rate_limits: RateLimits,
    pub retention: Retention,
    pub metrics: Metrics,
    pub forward: Forward,
    /// Where alert mail goes: `smtp://host:port`, `smtp+starttls://user:pass@host:587`,
    /// `smtps://user:pass@host:465`; empty: no mail.
    pub smtp_url: String,
    /// The sender of alert mail.
    pub mail_from: String,
    pub alerts: Alerts,
    /// Log files the server itself ships into its projects (`[[tail]]` entries).
    pub tail: Vec<TailSource>,
    /// The slug of the one organization the Web API shows.
    pub organization: String,
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses or networks).
    pub trusted_proxies: Vec<crate::ids::IpRange>,
    pub api: Api,
    pub sourcemaps: Sourcemaps,
    pub auth: Auth,
    pub oidc: Oidc,
}

/// Signing in to the web UI: sign-in by a trusted proxy's header, two-factor codes, mailed
/// password resets.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// A header naming the signed-in user's email, set by a reverse proxy that signs people
    /// in (oauth2-proxy, Authelia); empty: none.
    pub trusted_header: String,
    /// Peers whose `trusted_header` is believed; from any other address it is ignored.
    pub trusted_proxies: Vec<crate::ids::IpRange>,
    /// Make an account on first sign-in through `trusted_header` (a member of
    /// `oidc.default_projects`); otherwise only existing accounts sign in.
    pub auto_create: bool,
    /// Every password account must set up two-factor codes before it can do anything else.
    pub require_two_factor: bool,
    /// How long a mailed password-reset link works.
    pub reset_link_lifetime: Duration,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            trusted_header: String::new(),
            trusted_proxies: Vec::new(),
            auto_create: false,
            require_two_factor: false,
            reset_link_lifetime: Duration(std::time::Duration::from_secs(3600)),
        }
    }
}

/// Single sign-on with an OpenID Connect provider; off while `issuer` is empty.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Oidc {
    /// The provider's issuer URL; its `/.well-known/openid-configuration` is read.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// A file holding the client secret (instead of `client_secret`).
    pub client_secret_file: String,
    /// The sign-in button says "Sign in with" this.
    pub button_label: String,
    /// Email domains allowed to sign in; empty: any.
    pub allowed_domains: Vec<String>,
    /// Make an account on first sign-in (else only existing accounts sign in).
    pub auto_create: bool,
    /// Projects (slugs) a new account is a member of.
    pub default_projects: Vec<String>,
    /// Members of this group (in `groups_claim`) are admins, others not; empty: roles are
    /// managed in picket.
    pub admin_group: String,
    /// The ID token or userinfo claim listing the user's groups.
    pub groups_claim: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Whether password sign-in stays on.
    pub password_login: bool,
    /// With `password_login = false`, this admin may still sign in with a password.
    pub break_glass_admin: String,
    /// How long a call to the provider may take.
    pub timeout: Duration,
    /// PEM certificates trusted for the provider besides the system's.
    pub ca_file: String,
}

impl Default for Oidc {
    fn default() -> Self {
        Oidc {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            client_secret_file: String::new(),
            button_label: "single sign-on".into(),
            allowed_domains: Vec::new(),
            auto_create: false,
            default_projects: Vec::new(),
            admin_group: String::new(),
            groups_claim: "groups".into(),
            scopes: vec!["email".into(), "profile".into()],
            password_login: true,
            break_glass_admin: String::new(),
            timeout: Duration(std::time::Duration::from_secs(10)),
            ca_file: String::new(),
        }
    }
}

impl Oidc {
    pub fn enabled(&self) -> bool {
        !self.issuer.is_empty()
    }

    /// Whether `email` may sign in with a password.
    pub fn password_allowed(&self, email: &str) -> bool {
        self.password_login
            || !self.enabled()
            || (!self.break_glass_admin.is_empty()
                && self.break_glass_admin.eq_ignore_ascii_case(email))
    }

    /// The client secret, from `client_secret` or `client_secret_file`.
    pub fn secret(&self) -> Result<String, ConfigError> {
        if self.client_secret_file.is_empty() {
            return Ok(self.client_secret.clone());
        }
        std::fs::read_to_string(&self.client_secret_file)
            .map(|s| s.trim().to_string())
            .map_err(|e| ConfigError::Invalid {
                key: "oidc.client_secret_file".into(),
                cause: format!("cannot read {}: {e}", self.client_secret_file),
            })
    }
}

/// Uploaded source maps.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sourcemaps {
    /// An upload neither made nor used by an event for this long is deleted.
    pub max_age: Duration,
}

impl Default for Sourcemaps {
    fn default() -> Self {
        Sourcemaps {
            max_age: Duration(std::time::Duration::from_secs(90 * 86_400)),
        }
    }
}

/// The Web API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Requests per minute per token, with a burst (0 per minute: no limit).
    pub per_token_per_minute: u32,
    pub per_token_burst: u32,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            per_token_per_minute: 1200,
            per_token_burst: 120,
        }
    }
}

impl Api {
    pub fn per_token(&self) -> crate::ids::RateLimit {
        crate::ids::RateLimit {
            per_minute: self.per_token_per_minute,
            burst: self.per_token_burst,
        }
    }
}

/// A log file the server tails into a project.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TailSource {
    pub path: PathBuf,
    /// Project slug or id.
    #[serde(default = "default_project")]
    pub project: String,
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub release: Option<String>,
}

fn default_project() -> String {
    "default".into()
}

/// Alert delivery (the rules are per project).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// How long one SMTP conversation may take.
    pub smtp_timeout: Duration,
    /// How long an alert is retried (SMTP or a webhook down) before it is given up.
    pub retry_for: Duration,
    /// At most one alert per issue per rule within this.
    pub throttle: Duration,
    /// Mails per hour for the whole server; past it, alerts wait for one digest mail.
    pub max_mails_per_hour: u64,
    /// How long one webhook call may take.
    pub webhook_timeout: Duration,
    /// Let webhooks call loopback, private and link-local addresses (off: refused).
    pub allow_private_webhooks: bool,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            smtp_timeout: Duration(std::time::Duration::from_secs(30)),
            retry_for: Duration(std::time::Duration::from_secs(24 * 3600)),
            throttle: Duration(std::time::Duration::from_secs(3600)),
            max_mails_per_hour: 100,
            webhook_timeout: Duration(std::time::Duration::from_secs(10)),
            allow_private_webhooks: false,
        }
    }
}

/// Store-and-forward to upstream servers (which projects forward is set per project).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Forward {
    /// Entries not delivered after this long are dropped (and counted).
    pub max_pending_age: Duration,
    /// Keep forwarded events in this file too; `false` keeps each only until upstream has it.
    pub keep_local: bool,
    /// Extra PEM certificates trusted for https upstreams (a private CA), beside the system's.
    pub ca_file: PathBuf,
    /// How long one request upstream may take.
    pub timeout: Duration,
    /// Requests in flight to each upstream at once.
    pub concurrency: usize,
}

impl Default for Forward {
    fn default() -> Self {
        Forward {
            max_pending_age: Duration(std::time::Duration::from_secs(7 * 86_400)),
            keep_local: true,
            ca_file: PathBuf::new(),
            timeout: Duration(std::time::Duration::from_secs(30)),
            concurrency: 4,
        }
    }
}

/// How much history is kept. Counts and aggregates of issues are never reduced by it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Events older than this (by receive time) are deleted.
    pub max_age: Duration,
    /// Stored events per project; past it the least relevant are evicted.
    pub max_events_per_project: u64,
    /// Stored events per issue, so one flood cannot push out every other issue's history.
    pub max_events_per_issue: u64,
    /// Below this much free space on the data file's filesystem, intake refuses new events.
    pub min_free_disk: ByteSize,
    /// The data file's size budget (0: none); past it the least relevant events are evicted.
    pub max_disk: ByteSize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration(std::time::Duration::from_secs(90 * 86_400)),
            max_events_per_project: 100_000,
            max_events_per_issue: 10_000,
            min_free_disk: ByteSize(100_000_000),
            max_disk: ByteSize(0),
        }
    }
}

/// Events per minute, with a burst (0 = the per-minute figure); 0 per minute is no limit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Default for every client key; `picket key rate-limit` sets one key's own.
    pub per_key_per_minute: u32,
    pub per_key_burst: u32,
    /// For the whole server, all keys together.
    pub server_per_minute: u32,
    pub server_burst: u32,
}

impl RateLimits {
    pub fn per_key(&self) -> crate::ids::RateLimit {
        crate::ids::RateLimit {
            per_minute: self.per_key_per_minute,
            burst: self.per_key_burst,
        }
    }

    pub fn server(&self) -> crate::ids::RateLimit {
        crate::ids::RateLimit {
            per_minute: self.server_per_minute,
            burst: self.server_burst,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Serve `GET /metrics` in the Prometheus text format.
    pub enabled: bool,
    /// Bearer token scrapers must send; required when `http_addr` is not a loopback address.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// All request headers together.
    pub max_header_size: ByteSize,
    /// A `/store/` request body as it arrives on the wire (compressed).
    pub max_store_body_size: ByteSize,
    /// An `/envelope/` request body as it arrives on the wire (compressed).
    pub max_envelope_body_size: ByteSize,
    /// An envelope after decompression.
    pub max_envelope_size: ByteSize,
    /// Items in one envelope.
    pub max_envelope_items: usize,
    /// One event (a store body, or an envelope's event item) after decompression.
    pub max_event_size: ByteSize,
    /// One attachment as sent; a larger one is refused (and counted), its event kept.
    pub max_attachment_size: ByteSize,
    /// All attachments of one envelope together; more refuse the whole envelope (413).
    pub max_attachments_size: ByteSize,
    /// Deepest nesting of JSON arrays and objects in an event.
    pub max_json_depth: usize,
    /// Tags kept per event.
    pub max_tags: usize,
    /// Frames kept per stack trace (innermost and outermost).
    pub max_frames: usize,
    /// Breadcrumbs kept per event (the latest).
    pub max_breadcrumbs: usize,
    /// Longest string kept in an event.
    pub max_string_length: usize,
    /// Longest tag key or value.
    pub max_tag_length: usize,
    /// Connections served at once; more wait for a free slot.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (against slowloris).
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// Connections at once from one address (0: no cap); `trusted_proxies` are not capped.
    pub max_connections_per_address: usize,
    /// Bytes per second a request body must average once `header_read_timeout` has passed
    /// (0: any pace).
    pub min_body_rate: ByteSize,
    /// Bytes all request bodies being read may hold together; past it, 503 with Retry-After.
    pub max_body_bytes_in_flight: ByteSize,
}

impl Limits {
    /// The limits one event is cut to.
    pub fn event(&self) -> crate::event::EventLimits {
        crate::event::EventLimits {
            max_json_depth: self.max_json_depth,
            max_tags: self.max_tags,
            max_frames: self.max_frames,
            max_breadcrumbs: self.max_breadcrumbs,
            max_string_length: self.max_string_length,
            max_tag_length: self.max_tag_length,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Events waiting for the writer; past this, intake answers 503.
    pub queue_capacity: usize,
    /// Most events committed in one transaction.
    pub batch_max: usize,
    /// Issues the writer keeps in memory by fingerprint.
    pub issue_cache: usize,
    /// Save the allocator state with every commit, so that reopening after a crash is quick.
    pub quick_repair: bool,
    /// Batches are acknowledged once in the write-ahead log; a checkpoint makes the data file
    /// durable (and empties the log) at least this often while events arrive…
    pub checkpoint_interval: Duration,
    /// …and whenever the log grows past this.
    pub checkpoint_size: ByteSize,
    /// The data file's page cache in memory (most of picket's resident size once warm).
    pub page_cache: ByteSize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./picket-data"),
            http_addr: "127.0.0.1:9000".into(),
            udp_addr: "127.0.0.1:9001".into(),
            base_url: String::new(),
            log: "info".into(),
            shutdown_timeout: Duration(std::time::Duration::from_secs(10)),
            limits: Limits::default(),
            pipeline: Pipeline::default(),
            rate_limits: RateLimits::default(),
            retention: Retention::default(),
            metrics: Metrics::default(),
            forward: Forward::default(),
            smtp_url: String::new(),
            mail_from: "picket@localhost".into(),
            alerts: Alerts::default(),
            tail: Vec::new(),
            organization: "picket".into(),
            trusted_proxies: ["127.0.0.1/8", "::1"]
                .into_iter()
                .filter_map(|r| crate::ids::IpRange::try_from(r.to_string()).ok())
                .collect(),
            api: Api::default(),
            sourcemaps: Sourcemaps::default(),
            auth: Auth::default(),
            oidc: Oidc::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let event = crate::event::EventLimits::default();
        Limits {
            max_header_size: ByteSize(64 << 10),
            max_store_body_size: ByteSize(1 << 20),
            max_envelope_body_size: ByteSize(20 << 20),
            max_envelope_size: ByteSize(100 << 20),
            max_envelope_items: 1000,
            max_event_size: ByteSize(1 << 20),
            max_attachment_size: ByteSize(20 << 20),
            max_attachments_size: ByteSize(50 << 20),
            max_json_depth: event.max_json_depth,
            max_tags: event.max_tags,
            max_frames: event.max_frames,
            max_breadcrumbs: event.max_breadcrumbs,
            max_string_length: event.max_string_length,
            max_tag_length: event.max_tag_length,
            max_connections: 1024,
            header_read_timeout: Duration(std::time::Duration::from_secs(10)),
            idle_timeout: Duration(std::time::Duration::from_secs(75)),
            max_connections_per_address: 256,
            min_body_rate: ByteSize(1024),
            max_body_bytes_in_flight: ByteSize(64 << 20),
        }
    }
}

/// The data file's page cache unless `[pipeline] page_cache` says otherwise (commands, which
/// read no configuration, use it too).
pub const PAGE_CACHE: u64 = 16 << 20;

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            queue_capacity: 10_000,
            batch_max: 512,
            issue_cache: 10_000,
            quick_repair: true,
            checkpoint_interval: Duration(std::time::Duration::from_secs(1)),
            checkpoint_size: ByteSize(16 << 20),
            page_cache: ByteSize(PAGE_CACHE),
        }
    }
}

/// What the command line says, which wins over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub http_addr: Option<String>,
    pub udp_addr: Option<String>,
}

/// The environment variables picket reads, and the key each one sets.
pub const ENV_VARS: [(&str, &str); 16] = [
    ("PICKET_DATA_DIR", "data_dir"),
    ("PICKET_HTTP_ADDR", "http_addr"),
    ("PICKET_UDP_ADDR", "udp_addr"),
    ("PICKET_BASE_URL", "base_url"),
    ("PICKET_LOG", "log"),
    ("PICKET_SMTP_URL", "smtp_url"),
    ("PICKET_MAIL_FROM", "mail_from"),
    ("PICKET_RETENTION_MAX_AGE", "retention.max_age"),
    (
        "PICKET_RETENTION_MAX_EVENTS_PER_PROJECT",
        "retention.max_events_per_project",
    ),
    (
        "PICKET_RETENTION_MAX_EVENTS_PER_ISSUE",
        "retention.max_events_per_issue",
    ),
    ("PICKET_RETENTION_MIN_FREE_DISK", "retention.min_free_disk"),
    ("PICKET_RETENTION_MAX_DISK", "retention.max_disk"),
    ("PICKET_FORWARD_MAX_PENDING_AGE", "forward.max_pending_age"),
    ("PICKET_FORWARD_KEEP_LOCAL", "forward.keep_local"),
    ("PICKET_FORWARD_CA_FILE", "forward.ca_file"),
    ("PICKET_ORGANIZATION", "organization"),
];

impl Config {
    /// Loads the configuration from the process's real file, environment and flags.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::load_with(overrides, &|name| std::env::var(name).ok())
    }

    pub fn load_with(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let explicit = overrides
            .config
            .clone()
            .or_else(|| env("PICKET_CONFIG").map(PathBuf::from));
        let path = explicit.clone().or_else(|| {
            let local = PathBuf::from("picket.toml");
            local.exists().then_some(local)
        });
        let mut config = match path {
            Some(path) => Config::from_file(&path)?,
            None => Config::default(),
        };
        for (var, key) in ENV_VARS {
            if let Some(value) = env(var) {
                config.set(var, key, value)?;
            }
        }
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(a) = &overrides.http_addr {
            config.http_addr = a.clone();
        }
        if let Some(a) = &overrides.udp_addr {
            config.udp_addr = a.clone();
        }
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            cause: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            cause: e.to_string(),
        })
    }

    /// Sets `key` from the environment variable `var`.
    fn set(&mut self, var: &str, key: &str, value: String) -> Result<(), ConfigError> {
        let bad = |cause: String| ConfigError::Invalid {
            key: format!("{key} (from {var})"),
            cause,
        };
        let count = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| bad(format!("'{v}' is not a whole number")))
        };
        match key {
            "data_dir" => self.data_dir = PathBuf::from(value),
            "http_addr" => self.http_addr = value,
            "udp_addr" => self.udp_addr = value,
            "base_url" => self.base_url = value,
            "log" => self.log = value,
            "smtp_url" => self.smtp_url = value,
            "mail_from" => self.mail_from = value,
            "organization" => self.organization = value,
            "retention.max_age" => {
                self.retention.max_age = Duration::parse(&value).ok_or_else(|| {
                    bad(format!("'{value}' is not a duration (try 90d, 12h, 30s)"))
                })?;
            }
            "retention.max_events_per_project" => {
                self.retention.max_events_per_project = count(&value)?
            }
            "retention.max_events_per_issue" => {
                self.retention.max_events_per_issue = count(&value)?
            }
            "retention.min_free_disk" => {
                self.retention.min_free_disk = ByteSize::parse(&value)
                    .ok_or_else(|| bad(format!("'{value}' is not a size (try 500MB, 1GiB)")))?;
            }
            "forward.max_pending_age" => {
                self.forward.max_pending_age = Duration::parse(&value)
                    .ok_or_else(|| bad(format!("'{value}' is not a duration (try 7d, 12h)")))?;
            }
            "forward.keep_local" => {
                self.forward.keep_local = match value.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => return Err(bad(format!("'{other}' is not true or false"))),
                }
            }
            "forward.ca_file" => self.forward.ca_file = PathBuf::from(value),
            "retention.max_disk" => {
                self.retention.max_disk = ByteSize::parse(&value)
                    .ok_or_else(|| bad(format!("'{value}' is not a size (try 5GB, 500MB)")))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, cause: String| ConfigError::Invalid {
            key: key.to_string(),
            cause,
        };
        let http_addr = self.http_addr.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "http_addr",
                format!("'{}' is not an address:port ({e})", self.http_addr),
            )
        })?;
        if !self.udp_addr.is_empty() {
            self.udp_addr.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "udp_addr",
                    format!("'{}' is not an address:port ({e})", self.udp_addr),
                )
            })?;
        }
        let web_scheme =
            self.base_url.starts_with("http://") || self.base_url.starts_with("https://");
        if !self.base_url.is_empty() && !web_scheme {
            return Err(invalid(
                "base_url",
                format!("'{}' must start with http:// or https://", self.base_url),
            ));
        }
        let largest_body = self
            .limits
            .max_envelope_body_size
            .0
            .max(self.limits.max_store_body_size.0);
        if self.limits.max_body_bytes_in_flight.0 < largest_body {
            return Err(invalid(
                "limits.max_body_bytes_in_flight",
                format!(
                    "{} bytes is less than one request body may be ({largest_body} bytes, max_envelope_body_size)",
                    self.limits.max_body_bytes_in_flight.0
                ),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| invalid("log", format!("'{}' is not a log filter ({e})", self.log)))?;
        if self.metrics.enabled && !http_addr.ip().is_loopback() && self.metrics.token.is_empty() {
            return Err(invalid(
                "metrics.token",
                format!(
                    "/metrics on the non-loopback address {} needs a bearer token",
                    self.http_addr
                ),
            ));
        }
        if !self.smtp_url.is_empty() {
            SmtpUrl::parse(&self.smtp_url)?;
        }
        if !self.mail_from.contains('@') {
            return Err(invalid(
                "mail_from",
                format!("'{}' is not an email address", self.mail_from),
            ));
        }
        let slug_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if self.organization.is_empty()
            || self.organization.len() > 50
            || !self.organization.chars().all(slug_char)
        {
            return Err(invalid(
                "organization",
                format!(
                    "'{}' is not a slug (lowercase letters, digits, - and _; at most 50)",
                    self.organization
                ),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".into()));
        }
        if self.oidc.enabled() {
            if !(self.oidc.issuer.starts_with("https://")
                || self.oidc.issuer.starts_with("http://"))
            {
                return Err(invalid(
                    "oidc.issuer",
                    format!("'{}' is not an http(s) URL", self.oidc.issuer),
                ));
            }
            if self.oidc.client_id.is_empty() {
                return Err(invalid(
                    "oidc.client_id",
                    "is required with oidc.issuer".into(),
                ));
            }
            if self.oidc.client_secret.is_empty() && self.oidc.client_secret_file.is_empty() {
                return Err(invalid(
                    "oidc.client_secret",
                    "give client_secret or client_secret_file with oidc.issuer".into(),
                ));
            }
            self.oidc.secret()?;
        }
        if !self.auth.trusted_header.is_empty() {
            if hyper::header::HeaderName::from_bytes(self.auth.trusted_header.as_bytes()).is_err() {
                return Err(invalid(
                    "auth.trusted_header",
                    format!("'{}' is not a header name", self.auth.trusted_header),
                ));
            }
            if self.auth.trusted_proxies.is_empty() {
                return Err(invalid(
                    "auth.trusted_proxies",
                    "name the proxies whose auth.trusted_header is believed".into(),
                ));
            }
        }
        for (key, value) in [
            ("forward.concurrency", self.forward.concurrency),
            ("pipeline.queue_capacity", self.pipeline.queue_capacity),
            ("pipeline.batch_max", self.pipeline.batch_max),
            ("pipeline.issue_cache", self.pipeline.issue_cache),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// The URL users and SDKs reach this server at; DSNs are built from it.
    pub fn base_url(&self) -> String {
        if self.base_url.is_empty() {
            format!("http://{}", self.http_addr)
        } else {
            self.base_url.trim_end_matches('/').to_string()
        }
    }

    /// The DSN SDKs are given for a project key.
    pub fn dsn(&self, public_key: &str, project: u64) -> String {
        let base = self.base_url();
        let (scheme, rest) = base.split_once("://").unwrap_or(("http", &base));
        format!("{scheme}://{public_key}@{rest}/{project}")
    }
}

/// The file `picket init` writes: every key, commented out at its default, with what it does.
pub const TEMPLATE: &str = include_str!("picket.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn template_uncommented_is_the_defaults() {
        let uncommented: String = TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") => rest,
                _ if l.starts_with('#') => "",
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(parsed, Config::default());
        // Every key of the defaults appears in the template.
        let defaults = toml::to_string(&Config::default()).unwrap();
        for line in defaults.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap();
            assert!(
                uncommented.contains(&format!("{key} = ")),
                "template lacks {key}"
            );
        }
    }

    #[test]
    fn precedence_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("picket.toml");
        std::fs::write(
            &file,
            "http_addr = \"127.0.0.1:1111\"\nlog = \"warn\"\n[limits]\nmax_event_size = \"2MiB\"\n",
        )
        .unwrap();
        let env = |name: &str| (name == "PICKET_LOG").then(|| "debug".to_string());
        let overrides = Overrides {
            config: Some(file),
            http_addr: Some("127.0.0.1:2222".into()),
            ..Default::default()
        };
        let c = Config::load_with(&overrides, &env).unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:2222");
        assert_eq!(c.log, "debug");
        assert_eq!(c.limits.max_event_size, ByteSize(2 << 20));
        assert_eq!(c.data_dir, PathBuf::from("./picket-data"));
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("picket.toml");
        std::fs::write(&file, "[limits]\nmax_evnt_size = 5\n").unwrap();
        let overrides = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        let err = Config::load_with(&overrides, &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_evnt_size"), "{err}");
        std::fs::write(&file, "[limits]\nmax_event_size = \"lots\"\n").unwrap();
        let err = Config::load_with(&overrides, &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_event_size") && err.contains("lots"),
            "{err}"
        );
        let bad_addr = Overrides {
            http_addr: Some("nowhere".into()),
            ..Default::default()
        };
        let err = Config::load_with(&bad_addr, &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("http_addr"), "{err}");
    }

    #[test]
    fn retention_from_the_environment() {
        let env = |name: &str| match name {
            "PICKET_RETENTION_MAX_AGE" => Some("30s".to_string()),
            "PICKET_RETENTION_MAX_EVENTS_PER_PROJECT" => Some("500".to_string()),
            _ => None,
        };
        let c = Config::load_with(&Overrides::default(), &env).unwrap();
        assert_eq!(
            c.retention.max_age,
            Duration(std::time::Duration::from_secs(30))
        );
        assert_eq!(c.retention.max_events_per_project, 500);
        let bad = |name: &str| {
            (name == "PICKET_RETENTION_MAX_EVENTS_PER_ISSUE").then(|| "lots".to_string())
        };
        let err = Config::load_with(&Overrides::default(), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("retention.max_events_per_issue") && err.contains("lots"),
            "{err}"
        );
    }

    #[test]
    fn dsn_from_base_url() {
        let mut c = Config::default();
        assert_eq!(c.dsn("abc", 1), "http://abc@127.0.0.1:9000/1");
        c.base_url = "https://errors.example.com/picket/".into();
        assert_eq!(c.dsn("abc", 3), "https://abc@errors.example.com/picket/3");
    }
}
