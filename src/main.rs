//! The `picket` binary: parses the command line, loads the configuration, and dispatches.
//! Exit status: 0 on success, 1 when a command fails (with a message on stderr), 2 for a
//! usage error.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use serde_json::Value;

use picket::cli::{
    AlertsCommand, Cli, Command, ForwardCommand, IssueCommand, KeyCommand, ProjectCommand,
    ServeArgs,
};
use picket::config::{Config, Overrides, TEMPLATE};
use picket::control::{self, AlertChange, Request};
use picket::server::ServeError;
use picket::store;
use picket::store::issues::StatusChange;

/// mimalloc: parsing events allocates a lot from several threads at once, where glibc's malloc
/// spends its time consolidating and contending.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Start(args) => start(&cli, args),
        Command::Serve(args) => serve(&cli, args),
        _ => run(cli).map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("picket: error: {e:#}");
        ExitCode::FAILURE
    })
}

/// `picket serve`: the server in the foreground. A failure that a restart cannot fix exits
/// with a status of its own so the watchdog does not loop on it.
fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(cli, Some(args))?;
    let set_log_filter = init_logging(&config.log);
    match picket::server::run(config, overrides(cli, Some(args)), set_log_filter) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ServeError::Fatal(e)) => {
            eprintln!("picket: error: {e:#}");
            Ok(ExitCode::from(picket::supervisor::EXIT_FATAL as u8))
        }
        Err(ServeError::Failed(e)) => Err(e),
    }
}

fn load_config(cli: &Cli, serve: Option<&ServeArgs>) -> anyhow::Result<Config> {
    Ok(Config::load(&overrides(cli, serve))?)
}

/// Logs to stderr with a filter that SIGHUP can change; returns the function that changes it.
fn init_logging(filter: &str) -> picket::server::SetLogFilter {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    let initial = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(initial);
    let output = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(layer)
        .with(output)
        .init();
    Box::new(move |filter: &str| {
        let new = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        handle.reload(new).map_err(|e| e.to_string())
    })
}

fn overrides(cli: &Cli, serve: Option<&ServeArgs>) -> Overrides {
    Overrides {
        config: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        http_addr: serve.and_then(|s| s.http_addr.clone()),
        udp_addr: serve.and_then(|s| s.udp_addr.clone()),
    }
}

/// `picket start`: a watchdog process that holds the sockets and keeps `picket serve` running.
fn start(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(cli, Some(args))?;
    let _watchdog_keeps_its_filter = init_logging(&config.log);
    let (http, udp) = picket::server::bind_for_watchdog(&config)?;
    let mut serve_args: Vec<OsString> = Vec::new();
    if let Some(d) = &cli.data_dir {
        serve_args.extend(["--data-dir".into(), d.clone().into_os_string()]);
    }
    if let Some(c) = &cli.config {
        serve_args.extend(["--config".into(), c.clone().into_os_string()]);
    }
    serve_args.push("serve".into());
    if let Some(a) = &args.http_addr {
        serve_args.extend(["--http-addr".into(), a.into()]);
    }
    if let Some(a) = &args.udp_addr {
        serve_args.extend(["--udp-addr".into(), a.into()]);
    }
    let code = picket::supervisor::watchdog(serve_args, http, udp)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Start(_) | Command::Serve(_) => unreachable!("dispatched in main"),
        Command::Backup { dest_dir, json } => {
            let dest = std::path::absolute(dest_dir)
                .with_context(|| format!("bad path {}", dest_dir.display()))?;
            let bar = progress_bar();
            let progress = |done: u64, total: u64| {
                if let Some(bar) = &bar {
                    bar.set_length(total);
                    bar.set_position(done);
                }
            };
            let answer = manage_with_progress(&cli, Request::Backup { dest }, &progress)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            print(*json, &answer, |v| {
                format!(
                    "backed up {} events ({} rows, {:.1} MB) to {}\n",
                    v["events"],
                    v["rows"],
                    v["bytes"].as_f64().unwrap_or(0.0) / 1e6,
                    text(&v["path"])
                )
            })
        }
        Command::Compact { json } => {
            let config = load_config(&cli, None)?;
            let spinner = std::io::stderr().is_terminal().then(|| {
                let s = indicatif::ProgressBar::new_spinner();
                s.set_message("compacting");
                s.enable_steady_tick(std::time::Duration::from_millis(120));
                s
            });
            let (before, after) = store::backup::compact(&config.data_dir).map_err(|e| match e {
                store::StoreError::Locked { .. } => anyhow!("{e}\n(compact needs the server stopped: picket compact rewrites the file in place)"),
                other => other.into(),
            })?;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            let v = serde_json::json!({ "bytes_before": before, "bytes_after": after });
            print(*json, &v, |_| {
                format!(
                    "compacted: {:.1} MB -> {:.1} MB\n",
                    before as f64 / 1e6,
                    after as f64 / 1e6
                )
            })
        }
        Command::Check { json } => {
            let config = load_config(&cli, None)?;
            let report = store::backup::check(&config.data_dir)?;
            let v = serde_json::to_value(&report)?;
            print(*json, &v, |v| {
                format!(
                    "{}: {} (schema {}, {} projects, {} issues, {} events, {:.1} MB)\n",
                    text(&v["path"]),
                    if report.ok { "ok" } else { "CORRUPT" },
                    v["schema_version"],
                    v["projects"],
                    v["issues"],
                    v["events"],
                    v["bytes"].as_f64().unwrap_or(0.0) / 1e6
                )
            })?;
            if !report.ok {
                bail!("the data file failed its integrity check");
            }
            Ok(())
        }
        Command::Status { json } => {
            let config = load_config(&cli, None)?;
            let answer = control::ask_server(&config.data_dir, &Request::Status)
                .ok_or_else(|| {
                    anyhow!(
                        "no picket server is running on {}",
                        config.data_dir.display()
                    )
                })?
                .map_err(|e| anyhow!(e))?;
            print(*json, &answer, status_text)
        }
        #[cfg(debug_assertions)]
        Command::DebugCrash { worker } => {
            manage(
                &cli,
                Request::Crash {
                    worker: worker.clone(),
                },
            )?;
            Ok(())
        }
        Command::Init { path, force } => {
            if path.exists() && !force {
                bail!(
                    "{} exists already (use --force to overwrite it)",
                    path.display()
                );
            }
            std::fs::write(path, TEMPLATE)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Upgrade => {
            let config = load_config(&cli, None)?;
            let db = store::open_unchecked(&config.data_dir)?;
            let (before, after) = store::upgrade(&db)?;
            match before {
                Some(v) if v == after => {
                    println!("the data file is at schema version {after}; nothing to do")
                }
                Some(v) => println!("migrated the data file from schema version {v} to {after}"),
                None => println!("initialized the data file at schema version {after}"),
            }
            Ok(())
        }
        Command::Createsuperuser {
            email,
            password_stdin,
        } => {
            let password = read_password(*password_stdin)?;
            let hash = store::users::hash_password(&password)?;
            let req = Request::CreateSuperuser {
                email: email.clone(),
                password_hash: hash,
            };
            let answer = manage(&cli, req)?;
            println!(
                "admin user {} is ready",
                answer["email"].as_str().unwrap_or(email)
            );
            Ok(())
        }
        Command::Project(ProjectCommand::Create { name, json }) => {
            let answer = manage(&cli, Request::ProjectCreate { name: name.clone() })?;
            print(*json, &answer, |v| {
                format!(
                    "created project {} (id {})\nDSN: {}\n",
                    text(&v["slug"]),
                    v["id"],
                    text(&v["dsn"])
                )
            })
        }
        Command::Project(ProjectCommand::List { json }) => {
            let answer = manage(&cli, Request::ProjectList)?;
            print(*json, &answer, |v| {
                table(v, &["id", "slug", "unresolved_issues", "dsn"])
            })
        }
        Command::Key(KeyCommand::List { project, json }) => {
            let answer = manage(
                &cli,
                Request::KeyList {
                    project: project.clone(),
                },
            )?;
            print(*json, &answer, |v| {
                table(v, &["public_key", "active", "created", "dsn"])
            })
        }
        Command::Key(KeyCommand::Create { project, json }) => {
            let answer = manage(
                &cli,
                Request::KeyCreate {
                    project: project.clone(),
                },
            )?;
            print(*json, &answer, |v| {
                format!(
                    "created key {}\nDSN: {}\n",
                    text(&v["public_key"]),
                    text(&v["dsn"])
                )
            })
        }
        Command::Project(ProjectCommand::Retention {
            project,
            max_events,
            default: _,
            json,
        }) => {
            let req = Request::ProjectRetention {
                project: project.clone(),
                max_events: *max_events,
            };
            let answer = manage(&cli, req)?;
            print(*json, &answer, |v| match v["max_events"].as_u64() {
                Some(n) => format!("project {} keeps at most {n} events\n", text(&v["slug"])),
                None => format!("project {} uses the configured cap\n", text(&v["slug"])),
            })
        }
        Command::Project(ProjectCommand::Forward {
            project,
            dsn,
            off: _,
            json,
        }) => {
            let req = Request::ProjectForward {
                project: project.clone(),
                dsn: dsn.clone(),
            };
            let answer = manage(&cli, req)?;
            print(*json, &answer, |v| match v["forward_to"].as_str() {
                Some(to) => format!(
                    "project {} forwards every event it accepts from now on to {to}\n",
                    text(&v["slug"])
                ),
                None => format!("project {} does not forward\n", text(&v["slug"])),
            })
        }
        Command::Tail(args) => {
            let cmd = picket::tail::Command {
                dsn: args.dsn.clone(),
                once: args.once,
                state: args.state.clone(),
                options: picket::tail::Options {
                    format: args.format.parse().map_err(|e: String| anyhow!(e))?,
                    environment: args.environment.clone(),
                    release: args.release.clone(),
                    server_name: args.server_name.clone(),
                },
                files: args.files.clone(),
            };
            match picket::tail::command(cmd) {
                Ok(0) => Ok(()),
                Ok(code) => std::process::exit(i32::from(code)),
                Err(e) => bail!("{e}"),
            }
        }
        Command::Sendtestemail { address, json } => {
            let config = load_config(&cli, None)?;
            if config.smtp_url.is_empty() {
                bail!("alert mail is off: set smtp_url (or PICKET_SMTP_URL) first");
            }
            let mailer = picket::alert::mail::Mailer::new(
                &config.smtp_url,
                &config.mail_from,
                config.alerts.smtp_timeout.0,
            )?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(mailer.send_test(address))
                .map_err(|e| anyhow!("the test email to {address} was not sent: {e}"))?;
            let answer = serde_json::json!({ "sent_to": address, "server": mailer.server() });
            print(*json, &answer, |v| {
                format!(
                    "sent a test email to {} through {}\n",
                    text(&v["sent_to"]),
                    text(&v["server"])
                )
            })
        }
        Command::Alerts(cmd) => alerts_command(&cli, cmd),
        Command::Project(ProjectCommand::Member {
            project,
            email,
            remove,
            json,
        }) => {
            let req = Request::ProjectMember {
                project: project.clone(),
                email: email.clone(),
                remove: *remove,
            };
            let answer = manage(&cli, req)?;
            print(*json, &answer, |v| {
                format!(
                    "members of {}: {}\n",
                    text(&v["project"]),
                    v["members"]
                        .as_array()
                        .map(|m| m.iter().map(text).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                )
            })
        }
        Command::Forward(ForwardCommand::DeadLetter { retry, json }) => {
            let answer = manage(&cli, Request::DeadLetters { retry: *retry })?;
            print(*json, &answer, |v| {
                let list = v.get("dead_letters").unwrap_or(v);
                let mut out = String::new();
                for d in list.as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}  {}  HTTP {}  {}\n",
                        text(&d["project"]),
                        text(&d["event_id"]),
                        d["status"],
                        text(&d["reason"]).lines().next().unwrap_or("")
                    ));
                }
                match v.get("retried") {
                    Some(n) => out.push_str(&format!("{n} dead letters put back in the outbox\n")),
                    None if out.is_empty() => out.push_str("no dead letters\n"),
                    None => {}
                }
                out
            })
        }
        Command::Project(ProjectCommand::Delete { project, yes, json }) => {
            let answer = manage(
                &cli,
                Request::ProjectDelete {
                    project: project.clone(),
                    confirm: *yes,
                },
            )?;
            print(*json, &answer, |v| {
                format!(
                    "deleted project {}: {} issues, {} events\n",
                    text(&v["project"]),
                    v["issues_deleted"],
                    v["events_deleted"]
                )
            })
        }
        Command::Issue(cmd) => issue_command(&cli, cmd),
        Command::Key(KeyCommand::RateLimit {
            public_key,
            per_minute,
            burst,
            default: _,
            json,
        }) => {
            let limit = per_minute.map(|per_minute| picket::ids::RateLimit {
                per_minute,
                burst: burst.unwrap_or(0),
            });
            let req = Request::KeyRateLimit {
                public_key: public_key.clone(),
                limit,
            };
            let answer = manage(&cli, req)?;
            print(*json, &answer, |v| match v["rate_limit"].as_object() {
                Some(l) => format!(
                    "key {} is limited to {} events per minute (burst {})\n",
                    text(&v["public_key"]),
                    l["per_minute"],
                    l["burst"]
                ),
                None => format!(
                    "key {} uses the default rate limit\n",
                    text(&v["public_key"])
                ),
            })
        }
        Command::Key(KeyCommand::Revoke { public_key, json }) => {
            let answer = manage(
                &cli,
                Request::KeyRevoke {
                    public_key: public_key.clone(),
                },
            )?;
            print(*json, &answer, |v| {
                format!("revoked key {}\n", text(&v["public_key"]))
            })
        }
        Command::Issues {
            project,
            status,
            json,
        } => {
            let req = Request::Issues {
                project: project.clone(),
                status: Some(status.clone()),
            };
            let answer = manage(&cli, req)?;
            print(*json, &answer, |v| {
                table(v, &["id", "status", "level", "count", "last_seen", "title"])
            })
        }
        Command::Events {
            project,
            issue,
            json,
        } => {
            let answer = manage(
                &cli,
                Request::Events {
                    project: project.clone(),
                    issue: *issue,
                },
            )?;
            print(*json, &answer, |v| {
                table(v, &["event_id", "timestamp", "level", "title"])
            })
        }
        Command::Event {
            project,
            event_id,
            json,
        } => {
            let answer = manage(
                &cli,
                Request::Event {
                    project: project.clone(),
                    event_id: event_id.clone(),
                },
            )?;
            print(*json, &answer, |v| {
                serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
            })
        }
    }
}

/// A progress bar on stderr when it is a terminal.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {percent:>3}% {pos}/{len} rows, {eta} left",
        ) {
            bar.set_style(style);
        }
        bar
    })
}

fn manage(cli: &Cli, req: Request) -> anyhow::Result<Value> {
    manage_with_progress(cli, req, &|_, _| {})
}

/// Answers a management request through a running server, or on the file when none runs.
/// A server that is starting holds the file before its socket is up: wait for the socket.
fn manage_with_progress(
    cli: &Cli,
    req: Request,
    progress: picket::store::backup::Progress<'_>,
) -> anyhow::Result<Value> {
    let config = Arc::new(load_config(cli, None)?);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(answer) = control::ask_server_with_progress(&config.data_dir, &req, progress) {
            return answer.map_err(|e| anyhow!(e));
        }
        match control::open_direct(config.clone()) {
            Ok(handle) => return Ok(handle.answer_with_progress(req, progress)?),
            Err(store::StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password (again): ")?;
        if first != again {
            bail!("the passwords do not match");
        }
        first
    };
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(password)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn print(json: bool, v: &Value, human: impl Fn(&Value) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        print!("{}", human(v));
    }
    Ok(())
}

/// A plain-text table of the given columns of an array of objects.
fn table(v: &Value, columns: &[&str]) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| columns.iter().map(|c| text(&item[*c])).collect())
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        return "(none)\n".to_string();
    }
    let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect(), &mut out);
    for row in rows {
        line(row, &mut out);
    }
    out
}

fn status_text(v: &Value) -> String {
    let mut out = format!(
        "picket {} (pid {}), up {} s, queue depth {}\n",
        text(&v["version"]),
        v["pid"],
        v["uptime_seconds"],
        v["queue_depth"]
    );
    out += &format!(
        "events: {} accepted, {} stored, {} duplicates\n",
        v["events"]["accepted"], v["events"]["stored"], v["events"]["duplicates"]
    );
    for (title, key) in [
        ("rejected", "rejected"),
        ("UDP dropped", "dropped"),
        ("items dropped", "items_dropped"),
    ] {
        if let Some(map) = v[key].as_object().filter(|m| !m.is_empty()) {
            let parts: Vec<String> = map.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out += &format!("{title}: {}\n", parts.join(", "));
        }
    }
    let a = &v["alerts"];
    out += &format!(
        "alerts: mail {}, {} pending, {} mails and {} webhook calls sent, {} given up{}\n",
        text(&a["mail"]),
        a["pending"],
        a["mails_sent"],
        a["webhooks_sent"],
        a["failed"],
        a["last_error"]
            .as_str()
            .map(|e| format!(", last error: {e}"))
            .unwrap_or_default()
    );
    if let Some(cap) = v["events"]["disk_cap"].as_u64() {
        out += &format!("disk budget: the file has room for {cap} events\n");
    }
    for (slug, f) in v["forward"].as_object().into_iter().flatten() {
        out += &format!(
            "forward {slug} → {}: {} pending, {} delivered, {} dead letters, {} dropped{}{}\n",
            text(&f["upstream"]),
            f["pending"],
            f["delivered"],
            f["dead_letter"],
            f["dropped"],
            f["paused_until"]
                .as_str()
                .map(|t| format!(", paused until {t}"))
                .unwrap_or_default(),
            f["last_error"]
                .as_str()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default(),
        );
    }
    out += "\n";
    out + &table(&v["workers"], &["name", "state", "restarts", "last_error"])
}

/// `picket alerts …`: every subcommand is one `Alerts` request.
fn alerts_command(cli: &Cli, cmd: &AlertsCommand) -> anyhow::Result<()> {
    let (project, change, json) = match cmd {
        AlertsCommand::Show { project, json } => (project, AlertChange::Show, json),
        AlertsCommand::Set {
            project,
            new_issue,
            regression,
            reappeared,
            frequency,
            minutes,
            no_frequency,
            json,
        } => {
            let frequency = match (frequency, minutes, no_frequency) {
                (_, _, true) => Some(None),
                (Some(events), Some(minutes), _) => Some(Some(picket::store::alerts::Frequency {
                    events: *events,
                    minutes: *minutes,
                })),
                _ => None,
            };
            let change = AlertChange::Rules {
                new_issue: *new_issue,
                regression: *regression,
                reappeared: *reappeared,
                frequency,
            };
            (project, change, json)
        }
        AlertsCommand::Email {
            project,
            address,
            remove,
            json,
        } => {
            let change = AlertChange::Email {
                address: address.clone(),
                remove: *remove,
            };
            (project, change, json)
        }
        AlertsCommand::Webhook {
            project,
            url,
            format,
            remove,
            json,
        } => {
            let format = if format == "slack" {
                picket::store::alerts::WebhookFormat::Slack
            } else {
                picket::store::alerts::WebhookFormat::Json
            };
            let change = AlertChange::Webhook {
                url: url.clone(),
                format,
                remove: *remove,
            };
            (project, change, json)
        }
        AlertsCommand::OptOut {
            project,
            email,
            undo,
            json,
        } => {
            let change = AlertChange::OptOut {
                email: email.clone(),
                undo: *undo,
            };
            (project, change, json)
        }
    };
    let answer = manage(
        cli,
        Request::Alerts {
            project: project.clone(),
            change,
        },
    )?;
    print(*json, &answer, alerts_text)
}

fn alerts_text(v: &Value) -> String {
    let rules = &v["rules"];
    let on = |b: &Value| {
        if b.as_bool() == Some(true) {
            "on"
        } else {
            "off"
        }
    };
    let mut out = format!(
        "alerts of {} (mail {})\nnew issue: {}, regression: {}, reappeared: {}, frequency: {}\n",
        text(&v["project"]),
        text(&v["mail"]),
        on(&rules["new_issue"]),
        on(&rules["regression"]),
        on(&rules["reappeared"]),
        match rules["frequency"].as_object() {
            Some(f) => format!(
                "more than {} events in {} minutes",
                f["events"], f["minutes"]
            ),
            None => "off".into(),
        }
    );
    let list = |key: &Value| {
        key.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    out += &format!("recipients: {}\n", list(&v["recipients"]));
    for hook in rules["webhooks"].as_array().into_iter().flatten() {
        out += &format!(
            "webhook: {} ({})\n",
            text(&hook["url"]),
            text(&hook["format"])
        );
    }
    out
}

/// `picket issue …`: status changes and deletion, all through the same management requests.
fn issue_command(cli: &Cli, cmd: &IssueCommand) -> anyhow::Result<()> {
    let (project, issue, change, json) = match cmd {
        IssueCommand::Delete {
            project,
            issue,
            json,
        } => {
            let req = Request::IssueDelete {
                project: project.clone(),
                issue: *issue,
            };
            let answer = manage(cli, req)?;
            return print(*json, &answer, |v| {
                format!(
                    "deleted issue {} and its {} stored events\n",
                    v["issue"], v["events_deleted"]
                )
            });
        }
        IssueCommand::Resolve {
            project,
            issue,
            json,
        } => (project, issue, StatusChange::Resolve, json),
        IssueCommand::Unresolve {
            project,
            issue,
            json,
        } => (project, issue, StatusChange::Unresolve, json),
        IssueCommand::Ignore {
            project,
            issue,
            for_,
            until_count,
            json,
        } => {
            let until = match for_ {
                Some(text) => {
                    let d = picket::config::Duration::parse(text).ok_or_else(|| {
                        anyhow!("--for '{text}' is not a duration (try 30m, 12h, 7d)")
                    })?;
                    Some(picket::time::now() + d.0.as_secs_f64())
                }
                None => None,
            };
            (
                project,
                issue,
                StatusChange::Ignore {
                    until,
                    more_events: *until_count,
                },
                json,
            )
        }
    };
    let req = Request::IssueStatus {
        project: project.clone(),
        issue: *issue,
        change,
    };
    let answer = manage(cli, req)?;
    print(*json, &answer, |v| {
        format!("issue {} is {}\n", v["id"], text(&v["status"]))
    })
}
