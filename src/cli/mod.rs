//! The command line, as clap definitions, and (in `render`) how answers are shown. The names,
//! flags and JSON fields here are a contract that scripts rely on. The man pages under `man/`
//! are generated from these definitions ([`man_pages`]) and a test fails when they are out of
//! date.

pub mod render;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "picket",
    version,
    about = "A self-hosted error tracker that speaks the Sentry protocol",
    long_about = "picket receives events from every Sentry SDK (and old raven clients), groups them \
                  into issues and keeps them in one data file. Management commands work whether \
                  or not a server is running: through the server's control socket when it runs, \
                  on the data file directly when it does not."
)]
pub struct Cli {
    /// Data directory holding picket.redb and the control socket [env: PICKET_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default: ./picket.toml when it exists) [env: PICKET_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server under a watchdog that restarts it if it dies (creates the data file and
    /// a "default" project on first start)
    Start(ServeArgs),
    /// Run the server in the foreground without the watchdog, for systemd and containers
    Serve(ServeArgs),
    /// Write a fully commented config file with every key at its default
    Init {
        /// Where to write it
        #[arg(default_value = "picket.toml")]
        path: PathBuf,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Migrate the data file to this version's schema
    Upgrade,
    /// Create an admin user of the web UI (with --update, make an existing one admin)
    Createsuperuser {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
        /// When a user of that email exists: give it this password and make it an admin (its
        /// sessions end)
        #[arg(long)]
        update: bool,
    },
    /// Manage projects
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage client keys (the public part of a DSN)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Change an issue's status
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Users of the web UI: make one (with a set-password link), list them, send a new link
    #[command(subcommand)]
    User(UserCommand),
    /// Make, list and revoke tokens of the Web API (what sentry-cli and other tools send)
    #[command(subcommand)]
    Token(TokenCommand),
    /// List a project's uploaded source maps (artifact bundles), newest first
    Sourcemaps {
        /// Project slug or numeric id
        project: String,
        /// Delete the upload with this id instead
        #[arg(long)]
        delete: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a project's releases, newest first, with what events said about each
    Releases {
        /// Project slug or numeric id
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// List the feedback a project's end users sent, newest first
    Feedback {
        /// Project slug or numeric id
        project: String,
        /// Only the feedback about this issue's events
        #[arg(long)]
        issue: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Write the bytes of an attachment of a stored event (to standard output without -o)
    Attachment {
        /// Project slug or numeric id
        project: String,
        /// 32 hex digits (dashes allowed)
        event_id: String,
        /// The attachment's file name, as `picket event --json` lists it
        name: String,
        /// Write to this file instead
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List a project's issues, most recently seen first
    Issues {
        /// Project slug or numeric id
        project: String,
        /// Only issues with this status [default: unresolved, unless --query names one]
        #[arg(long, value_parser = ["unresolved", "resolved", "ignored", "all"])]
        status: Option<String>,
        /// A search in Sentry's syntax: `is:unresolved level:error release:latest
        /// environment:production assigned:me firstSeen:-24h times_seen:>100
        /// user.email:ann@example.com browser:Chrome !os:Linux url:*checkout* free text`
        #[arg(long, short = 'q', value_name = "QUERY")]
        query: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List an issue's events, newest first
    Events {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        /// Only events matching this search: tags, `user.id:`, `user.email:`, `release:`,
        /// `environment:`, `level:`, free text
        #[arg(long, short = 'q', value_name = "QUERY")]
        query: Option<String>,
        /// At most this many events
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Copy a consistent snapshot of the data file into DEST_DIR (works while the server runs)
    Backup {
        /// An empty or new directory; the copy is DEST_DIR/picket.redb
        dest_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Store-and-forward: what upstream refused
    #[command(subcommand)]
    Forward(ForwardCommand),
    /// Shrink the data file to what it holds (the server must be stopped)
    Compact {
        #[arg(long)]
        json: bool,
    },
    /// Verify the data file's integrity (the server must be stopped; or check a backup)
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Send a test email through the configured SMTP server (smtp_url, mail_from) and say
    /// exactly what failed, if anything
    Sendtestemail {
        /// Where to send it
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// Ship PHP / php-fpm error logs as grouped events to picket or any Sentry-compatible
    /// server: follows the files (or with --once sends what is new and exits), survives
    /// rotation, and saves each file's position only after the server accepted the entries
    Tail(TailArgs),
    /// Alert rules and targets of a project (mail to members and admins, webhooks)
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// List a project's cron monitors: status, schedule, next expected check-in and the
    /// latest check-ins
    Monitors {
        /// Project slug or numeric id
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// Mute, unmute or delete a cron monitor
    #[command(subcommand)]
    Monitor(MonitorCommand),
    /// The audit log, newest first: sign-ins and failed sign-ins, tokens made and revoked,
    /// accounts made, deactivated and promoted, project roles, two-factor changes
    Audit {
        /// At most this many entries
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
        /// Only entries older than this entry id (to page back)
        #[arg(long, value_name = "ID")]
        before: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Show the running server's workers, queue and counters
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `picket completions bash > /etc/bash_completion.d/picket`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Stop the running server as SIGTERM does (its watchdog too, when `picket start` runs it),
    /// and wait until it has exited
    Stop {
        /// How long to wait for it to exit, in seconds
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Make a worker of the running server panic (test builds only)
    #[cfg(debug_assertions)]
    #[command(hide = true)]
    DebugCrash { worker: String },
    /// Show one stored event, normalized
    Event {
        /// Project slug or numeric id
        project: String,
        /// 32 hex digits (dashes allowed)
        event_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Address for HTTP intake and the web UI [env: PICKET_HTTP_ADDR]
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// Address for raven UDP datagrams, "" to disable [env: PICKET_UDP_ADDR]
    #[arg(long, value_name = "ADDR")]
    pub udp_addr: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Keep recording a monitor's check-ins but open no issue for its failures (--off: open
    /// them again)
    Mute {
        /// Project slug or numeric id
        project: String,
        slug: String,
        #[arg(long)]
        off: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete a monitor and its check-ins (its issue stays); the next check-in with a
    /// monitor_config makes it again
    Delete {
        /// Project slug or numeric id
        project: String,
        slug: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project with its first key and print its DSN
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a project its own cap on stored events, or return it to the configured one
    Retention {
        /// Project slug or numeric id
        project: String,
        /// Stored events kept for this project (0: no cap)
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        max_events: Option<u64>,
        /// Use retention.max_events_per_project again
        #[arg(long)]
        default: bool,
        #[arg(long)]
        json: bool,
    },
    /// Forward every event the project accepts from now on to an upstream Sentry-compatible
    /// server, from a durable outbox (store-and-forward); --off stops it
    Forward {
        /// Project slug or numeric id
        project: String,
        /// The upstream project's DSN (http or https), as its SDK setup shows it
        #[arg(required_unless_present = "off", conflicts_with = "off")]
        dsn: Option<String>,
        /// Stop forwarding (entries still pending stay, and go out if forwarding resumes)
        #[arg(long)]
        off: bool,
        #[arg(long)]
        json: bool,
    },
    /// Store the attachments sent with a project's events (on, the default), or refuse them
    /// and count them as dropped (off)
    Attachments {
        /// Project slug or numeric id
        project: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long)]
        json: bool,
    },
    /// Show or change what is scrubbed from a project's events before they are stored (on by
    /// default: sensitive keys, card numbers, tokens, private keys, URL passwords); changes
    /// apply to new events
    Scrub {
        /// Project slug or numeric id
        project: String,
        /// The default rules on or off
        #[arg(long, value_parser = ["on", "off"])]
        defaults: Option<String>,
        /// Drop user.ip_address and REMOTE_ADDR
        #[arg(long, value_parser = ["on", "off"])]
        scrub_ip: Option<String>,
        /// Also scrub values of keys containing NAME (repeatable)
        #[arg(long, value_name = "NAME")]
        sensitive: Vec<String>,
        /// Stop scrubbing an extra name
        #[arg(long, value_name = "NAME")]
        no_sensitive: Vec<String>,
        /// Never scrub the key NAME (repeatable)
        #[arg(long, value_name = "NAME")]
        safe: Vec<String>,
        /// Scrub NAME again
        #[arg(long, value_name = "NAME")]
        no_safe: Vec<String>,
        /// A rule SELECTOR=remove|mask|hash, e.g. '$http.headers.x-custom=remove',
        /// '$frame.vars.**=mask', '$user.email=hash' (repeatable)
        #[arg(long, value_name = "SELECTOR=METHOD")]
        rule: Vec<String>,
        /// Remove the rule with this selector
        #[arg(long, value_name = "SELECTOR")]
        no_rule: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show or change which events a project drops before storing them (answered 200, counted
    /// by reason; all off by default); changes apply to new events
    Filters {
        /// Project slug or numeric id
        project: String,
        /// Errors raised by browser extensions
        #[arg(long, value_parser = ["on", "off"])]
        browser_extensions: Option<String>,
        /// Events from localhost and 127.0.0.1
        #[arg(long, value_parser = ["on", "off"])]
        localhost: Option<String>,
        /// Events from web crawlers (by user agent)
        #[arg(long, value_parser = ["on", "off"])]
        web_crawlers: Option<String>,
        /// Events from old browsers (Internet Explorer, Edge before 79, Safari before 12,
        /// Firefox and Chrome before 70, Opera before 57)
        #[arg(long, value_parser = ["on", "off"])]
        legacy_browsers: Option<String>,
        /// Drop events whose message or exception matches GLOB (repeatable)
        #[arg(long, value_name = "GLOB")]
        error_message: Vec<String>,
        #[arg(long, value_name = "GLOB")]
        no_error_message: Vec<String>,
        /// Drop events whose release matches GLOB (repeatable)
        #[arg(long, value_name = "GLOB")]
        release: Vec<String>,
        #[arg(long, value_name = "GLOB")]
        no_release: Vec<String>,
        /// Keep only this fraction of events (0 to 1)
        #[arg(long, value_name = "RATE", conflicts_with = "no_sample_rate")]
        sample_rate: Option<f64>,
        /// Keep every event again
        #[arg(long)]
        no_sample_rate: bool,
        #[arg(long)]
        json: bool,
    },
    /// Make a user a member of a project (members triage its issues and get its alert mail;
    /// owners also change its settings, keys, forwarding, members and alerts; admins do
    /// everything everywhere), change their role, or --remove them
    Member {
        /// Project slug or numeric id
        project: String,
        email: String,
        /// Their role: member or owner [default: member for someone new, else unchanged]
        #[arg(long, value_parser = ["member", "owner"], conflicts_with = "remove")]
        role: Option<String>,
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete a project with its issues, events and keys
    Delete {
        /// Project slug or numeric id
        project: String,
        /// Really delete (without it, says what would be deleted)
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// List projects
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Where to send: the project's DSN
    #[arg(long, env = "SENTRY_DSN", hide_env_values = true)]
    pub dsn: String,
    /// Send everything new since the last run and exit (the cron-job form); an overlapping run
    /// exits at once with status 0
    #[arg(long)]
    pub once: bool,
    /// Where read positions are kept [default: $XDG_STATE_HOME/picket/tail.json]
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// What the files hold
    #[arg(long, default_value = "auto", value_parser = ["auto", "php", "php-fpm"])]
    pub format: String,
    /// The events' environment
    #[arg(long)]
    pub environment: Option<String>,
    /// The events' release
    #[arg(long)]
    pub release: Option<String>,
    /// The events' server_name [default: this host's name]
    #[arg(long)]
    pub server_name: Option<String>,
    /// The log files
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Show a project's rules, recipients and webhooks, and whether mail is on
    Show {
        /// Project slug or numeric id
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// Turn rules on or off; set or clear the frequency threshold
    Set {
        /// Project slug or numeric id
        project: String,
        /// Alert on a new issue (on by default)
        #[arg(long, value_parser = clap::builder::BoolishValueParser::new(), value_name = "on|off")]
        new_issue: Option<bool>,
        /// Alert on a regression: an event on a resolved issue (on by default)
        #[arg(long, value_parser = clap::builder::BoolishValueParser::new(), value_name = "on|off")]
        regression: Option<bool>,
        /// Alert when an ignored issue comes back (on by default)
        #[arg(long, value_parser = clap::builder::BoolishValueParser::new(), value_name = "on|off")]
        reappeared: Option<bool>,
        /// Alert when an end user sends feedback about an issue's event (on by default)
        #[arg(long, value_parser = clap::builder::BoolishValueParser::new(), value_name = "on|off")]
        feedback: Option<bool>,
        /// Alert when an issue gets more than N events within --minutes, once per window
        #[arg(
            long,
            value_name = "N",
            requires = "minutes",
            conflicts_with = "no_frequency"
        )]
        frequency: Option<u64>,
        /// The frequency rule's window
        #[arg(long, value_name = "M", requires = "frequency")]
        minutes: Option<u64>,
        /// Turn the frequency rule off
        #[arg(long)]
        no_frequency: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mail alerts of a project also to this address (beside its members and the admins)
    Email {
        /// Project slug or numeric id
        project: String,
        address: String,
        /// Stop mailing it
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// Post a project's alerts to a webhook URL
    Webhook {
        /// Project slug or numeric id
        project: String,
        url: String,
        /// json: issue, event summary, link; slack: text + blocks (Slack, Mattermost, Discord)
        #[arg(long, default_value = "json", value_parser = ["json", "slack"])]
        format: String,
        /// Remove the webhook
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop mailing a member or admin about a project (--undo: mail them again)
    OptOut {
        /// Project slug or numeric id
        project: String,
        email: String,
        #[arg(long)]
        undo: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ForwardCommand {
    /// List the events upstream refused for good (400, 401, 403, 413, repeated 500)
    DeadLetter {
        /// Put them back in the outbox to be sent again
        #[arg(long)]
        retry: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// Mark an issue resolved; its next event makes it a regression (with --in-release or
    /// --in-next-release, only an event of that release or a newer one)
    Resolve {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        /// Resolved in this release: events of releases first seen before it do not reopen it
        #[arg(long, value_name = "RELEASE", conflicts_with = "in_next_release")]
        in_release: Option<String>,
        /// Resolved in the release after the newest one seen: events of that one and older
        /// ones do not reopen it
        #[arg(long)]
        in_next_release: bool,
        #[arg(long)]
        json: bool,
    },
    /// Ignore an issue, for good or until a time, a number of further events or of further
    /// users (whichever comes first)
    Ignore {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        /// Come back after this long (30m, 12h, 7d)
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
        /// Come back after this many more events
        #[arg(long, value_name = "N")]
        until_count: Option<u64>,
        /// Come back after this many more distinct users
        #[arg(long, value_name = "N")]
        until_users: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Assign an issue to a member of its project (they are mailed), or --none
    Assign {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        /// The member's email
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        email: Option<String>,
        /// Unassign it
        #[arg(long)]
        none: bool,
        #[arg(long)]
        json: bool,
    },
    /// Comment on an issue (its assignee and earlier commenters are mailed)
    Comment {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        /// The comment, plain text
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// Merge issues into one: their events, counts and activity move to it, and events with
    /// their fingerprints join it from then on
    Merge {
        /// Project slug or numeric id
        project: String,
        /// The issue that stays
        into: u64,
        /// The issues merged into it
        #[arg(required = true)]
        from: Vec<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Show who changed an issue and when: first seen, resolved, regressed, ignored,
    /// assigned, commented, merged
    Activity {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        #[arg(long)]
        json: bool,
    },
    /// Delete an issue and its stored events (the space is reused by new events)
    Delete {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        /// Really delete (without it, says what would be deleted and exits 1)
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mark an issue unresolved again
    Unresolve {
        /// Project slug or numeric id
        project: String,
        /// The issue number within the project
        issue: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make a user; prints the one-time link where they choose their password
    Create {
        email: String,
        /// Make them an admin (who sees every project and manages users)
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the users
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new one-time set-password link for a user
    Link {
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a user an admin, or a member again
    Role {
        email: String,
        #[arg(value_parser = ["admin", "member"])]
        role: String,
        #[arg(long)]
        json: bool,
    },
    /// Turn off a user's two-factor codes (who lost their phone and recovery codes); they
    /// sign in with their password alone until they set them up again
    ResetTwoFactor {
        email: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once and only its hash is kept
    Create {
        /// What the token is for, to tell it apart later
        name: String,
        /// Comma-separated scopes, as Sentry names them [default: org:read, project:read,
        /// project:write, project:releases, event:read, event:write]
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Limit the token to one project (slug or id)
        #[arg(long)]
        project: Option<String>,
        /// The user the token acts as (it sees only their projects) [default: the operator,
        /// who may do everything]
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the tokens (never their secrets)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id: requests with it are refused from then on
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List a project's keys
    List {
        /// Project slug or numeric id
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// Create another key for a project
    Create {
        /// Project slug or numeric id
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a key its own rate limit (events per minute), or return it to the default
    RateLimit {
        public_key: String,
        /// Events per minute; 0 means no limit for this key
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        per_minute: Option<u32>,
        /// Events allowed at once before the per-minute rate applies (default: the per-minute figure)
        #[arg(long, requires = "per_minute")]
        burst: Option<u32>,
        /// Use the configured default (rate_limits.per_key_per_minute) again
        #[arg(long)]
        default: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: events sent with it are refused from then on
    Revoke {
        public_key: String,
        #[arg(long)]
        json: bool,
    },
}

/// The man pages: `picket.1` and one `picket-<command>.1` per subcommand.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    // The help subcommand is for the terminal; a page would only repeat picket(1).
    let root = Cli::command().disable_help_subcommand(true);
    let mut pages = Vec::new();
    let mut render = |name: String, cmd: clap::Command| {
        let mut out = Vec::new();
        // Rendering into a Vec cannot fail.
        let _ = clap_mangen::Man::new(cmd.clone()).render(&mut out);
        out.extend_from_slice(extra_sections(&name, &cmd).as_bytes());
        pages.push((format!("{name}.1"), out));
    };
    render("picket".into(), root.clone());
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("picket-{}", sub.get_name());
        let sub = sub.clone().disable_help_subcommand(true);
        for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            let nested_name = format!("{name}-{}", nested.get_name());
            render(nested_name.clone(), nested.clone().name(nested_name));
        }
        render(name.clone(), sub.name(name));
    }
    pages
}

/// Examples by page, as an operator types them.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "picket",
        "picket start\npicket --data-dir /var/lib/picket status\npicket issues default --status unresolved",
    ),
    (
        "picket-start",
        "picket start\npicket --data-dir /var/lib/picket start --http-addr 0.0.0.0:9000",
    ),
    ("picket-serve", "picket --data-dir /var/lib/picket serve"),
    (
        "picket-stop",
        "picket --data-dir /var/lib/picket stop --timeout 30",
    ),
    (
        "picket-status",
        "picket status\npicket status --json | jq .queue_depth",
    ),
    ("picket-init", "picket init /etc/picket/picket.toml"),
    (
        "picket-upgrade",
        "picket --data-dir /var/lib/picket upgrade",
    ),
    (
        "picket-createsuperuser",
        "picket createsuperuser --email admin@example.com\necho 'a long password' | picket createsuperuser --email admin@example.com --password-stdin --update",
    ),
    (
        "picket-project-create",
        "picket project create shop --json | jq -r .dsn",
    ),
    (
        "picket-project-delete",
        "picket project delete shop\npicket project delete shop --yes",
    ),
    ("picket-issues", "picket issues shop --status all --json"),
    ("picket-issue-delete", "picket issue delete shop 12 --yes"),
    ("picket-issue-resolve", "picket issue resolve shop 12"),
    (
        "picket-issue-ignore",
        "picket issue ignore shop 12 --for 24h",
    ),
    (
        "picket-event",
        "picket event shop 9ec79c33ec9942ab8353589fcb2e04dc --json",
    ),
    (
        "picket-attachment",
        "picket attachment shop 9ec79c33ec9942ab8353589fcb2e04dc crash.dmp -o crash.dmp",
    ),
    ("picket-backup", "picket backup /var/backups/picket"),
    (
        "picket-check",
        "systemctl stop picket && picket --data-dir /var/lib/picket check",
    ),
    (
        "picket-compact",
        "systemctl stop picket && picket --data-dir /var/lib/picket compact",
    ),
    (
        "picket-tail",
        "picket tail --dsn http://KEY@localhost:9000/1 /var/log/php/error.log",
    ),
    (
        "picket-token-create",
        "picket token create sentry-cli --scopes project:releases,org:read --json",
    ),
    (
        "picket-completions",
        "picket completions bash > /etc/bash_completion.d/picket\npicket completions zsh > \"${fpath[1]}/_picket\"",
    ),
    ("picket-monitors", "picket monitors shop --json"),
    ("picket-feedback", "picket feedback shop --issue 12"),
];

/// The sections clap does not write: examples, environment, files, exit status, see also.
fn extra_sections(name: &str, cmd: &clap::Command) -> String {
    let mut out = String::new();
    let examples = EXAMPLES
        .iter()
        .find(|(page, _)| *page == name)
        .map(|(_, text)| text.to_string())
        .unwrap_or_else(|| {
            let words = name.replace('-', " ");
            let has_json = cmd.get_arguments().any(|a| a.get_id() == "json");
            if has_json {
                format!("{words} --help\n{words} ... --json")
            } else {
                format!("{words} --help")
            }
        });
    out.push_str(".SH EXAMPLES\n");
    for line in examples.lines() {
        out.push_str(&format!(".PP\n.nf\n{}\n.fi\n", roff_escape(line)));
    }
    out.push_str(
        ".SH ENVIRONMENT\n\
         .TP\n\\fBPICKET_DATA_DIR\\fR\nThe data directory (as \\fB--data-dir\\fR).\n\
         .TP\n\\fBPICKET_CONFIG\\fR\nThe config file (as \\fB--config\\fR).\n\
         .TP\n\\fBPICKET_*\\fR\nAny config key, e.g. PICKET_HTTP_ADDR, PICKET_LOG, PICKET_SMTP_URL, \
         PICKET_RETENTION_MAX_DISK; the environment overrides the file, flags override both.\n",
    );
    out.push_str(
        ".SH FILES\n\
         .TP\n\\fIDATA_DIR\\fB/picket.redb\\fR\nThe one data file (mode 0600): events, issues, \
         users, settings.\n\
         .TP\n\\fIDATA_DIR\\fB/control.sock\\fR\nThe running server's control socket (mode 0600), \
         through which commands act while it runs.\n\
         .TP\n\\fBpicket.toml\\fR\nThe config file (\\fBpicket init\\fR writes one with every key).\n",
    );
    out.push_str(
        ".SH EXIT STATUS\n\
         .TP\n0\nSuccess.\n\
         .TP\n1\nThe command failed; the message on standard error says why.\n\
         .TP\n2\nThe command line was wrong.\n\
         .TP\n78\nThe server cannot run and a restart would not help (a bad configuration, a data \
         file in use by another server, newer than this picket, or empty); the watchdog stops too.\n",
    );
    out.push_str(".SH SEE ALSO\n");
    let related = if name == "picket" {
        "picket-start(1), picket-status(1), picket-stop(1), the README".to_string()
    } else {
        "picket(1), the README".to_string()
    };
    out.push_str(&format!("{related}\n"));
    out
}

/// A line of text safe inside roff: backslashes and hyphens escaped (so options copy as
/// typed), a leading dot or quote escaped.
fn roff_escape(line: &str) -> String {
    let text = line.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
