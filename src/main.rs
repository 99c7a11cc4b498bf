//! The `picket` binary: parses the command line, loads the configuration, and dispatches.
//! Exit status: 0 on success, 1 when a command fails (with a message on stderr), 2 for a
//! usage error.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use clap::Parser;

use picket::cli::render::{self, print};
use picket::cli::{
    AlertsCommand, Cli, Command, ForwardCommand, IssueCommand, KeyCommand, MonitorCommand,
    ProjectCommand, ServeArgs, TokenCommand, UserCommand,
};
use picket::config::{Config, Overrides, TEMPLATE};
use picket::manage::alerts::{AlertChange, Alerts};
use picket::manage::{self, Operation, issues, keys, projects};
use picket::store;
use picket::store::alerts::{Frequency, WebhookFormat};
use picket::store::issues::StatusChange;

/// mimalloc: parsing events allocates a lot from several threads at once, where glibc's malloc
/// spends its time consolidating and contending.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Small pages only: mimalloc asks for transparent huge pages on its arenas, and with them
    // a heap spread thinly over a few 2 MiB pages keeps every one of them resident (about 40
    // MB more when idle, measured at 10 million events). Kept for the whole process, and for
    // kernels that hand out huge pages unasked too.
    // SAFETY: prctl with these arguments only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
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
        Err(e) if e.is_fatal() => {
            eprintln!("picket: error: {e}");
            Ok(ExitCode::from(picket::supervisor::EXIT_FATAL as u8))
        }
        Err(e) => Err(e.into()),
    }
}

/// The running server's status, through its control socket; an error when none runs.
fn running_status(cli: &Cli) -> anyhow::Result<picket::status::StatusReport> {
    let config = load_config(cli, None)?;
    manage::socket::ask_server(&config.data_dir, manage::status::Status, &|_, _| {})
        .ok_or_else(|| {
            anyhow!(
                "no picket server is running on {}",
                config.data_dir.display()
            )
        })?
        .map_err(Into::into)
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
        handle.reload(EnvFilter::try_new(filter)?)?;
        Ok(())
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
            let answer = call_with_progress(&cli, manage::backup::Backup { dest }, &progress)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            print(*json, &answer, render::backup);
            Ok(())
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
            });
            Ok(())
        }
        Command::Check { json } => {
            let config = load_config(&cli, None)?;
            let report = store::backup::check(&config.data_dir).map_err(|e| match e {
                store::StoreError::Locked { path } => anyhow!(
                    "{} is in use by a running picket: check reads the file itself, so stop the server first (picket stop), or check a backup (picket backup DIR, then picket --data-dir DIR check)",
                    path.display()
                ),
                other => other.into(),
            })?;
            print(*json, &report, render::check);
            if !report.ok {
                bail!("the data file failed its integrity check");
            }
            Ok(())
        }
        Command::Completions { shell } => {
            let mut command = <picket::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "picket", &mut std::io::stdout());
            Ok(())
        }
        Command::Stop { timeout } => {
            let status = running_status(&cli)?;
            let pid = status.pid;
            // The watchdog of `picket start` stops with its server; stopping only the server
            // would look like a crash to it.
            let target = picket::supervisor::watchdog_of(pid).unwrap_or(pid);
            picket::supervisor::terminate(target)
                .with_context(|| format!("cannot signal picket (pid {target})"))?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(*timeout);
            while picket::supervisor::alive(target) {
                if std::time::Instant::now() > deadline {
                    bail!("picket (pid {target}) is still running after {timeout} s");
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            println!("stopped picket (pid {target})");
            Ok(())
        }
        Command::Audit {
            limit,
            before,
            json,
        } => {
            let op = manage::audit::AuditList {
                limit: Some(*limit),
                before: *before,
            };
            print(*json, call(&cli, op)?.as_slice(), render::audit);
            Ok(())
        }
        Command::Status { json } => {
            let answer = running_status(&cli)?;
            print(*json, &answer, render::status);
            Ok(())
        }
        #[cfg(debug_assertions)]
        Command::DebugCrash { worker } => {
            call(
                &cli,
                manage::status::Crash {
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
            update,
        } => {
            let password = read_password(*password_stdin)?;
            let password_hash = manage::users::hash_password(&password)?;
            let op = manage::users::CreateSuperuser {
                email: email.clone(),
                password_hash,
                update: *update,
            };
            let user = call(&cli, op)?;
            println!(
                "admin user {} is ready (data file {})",
                user.email,
                store::file_in(&load_config(&cli, None)?.data_dir).display()
            );
            Ok(())
        }
        Command::Project(cmd) => project_command(&cli, cmd),
        Command::Key(cmd) => key_command(&cli, cmd),
        Command::Token(cmd) => token_command(&cli, cmd),
        Command::User(cmd) => user_command(&cli, cmd),
        Command::Sourcemaps {
            project,
            delete,
            json,
        } => {
            match delete {
                Some(id) => {
                    let op = manage::artifacts::BundleDelete {
                        project: project.clone(),
                        id: id.clone(),
                    };
                    print(*json, &call(&cli, op)?, render::bundle_deleted);
                }
                None => {
                    let op = manage::artifacts::BundleList {
                        project: project.clone(),
                    };
                    print(*json, call(&cli, op)?.as_slice(), render::bundles);
                }
            }
            Ok(())
        }
        Command::Releases { project, json } => {
            let op = manage::releases::ReleaseList {
                project: Some(project.clone()),
            };
            print(*json, call(&cli, op)?.as_slice(), render::releases);
            Ok(())
        }
        Command::Feedback {
            project,
            issue,
            json,
        } => {
            let op = manage::feedback::FeedbackList {
                project: project.clone(),
                issue: *issue,
                limit: None,
            };
            print(*json, call(&cli, op)?.as_slice(), render::feedback);
            Ok(())
        }
        Command::Attachment {
            project,
            event_id,
            name,
            output,
        } => {
            let op = manage::attachments::AttachmentFetch {
                project: project.clone(),
                event_id: event_id.clone(),
                which: manage::attachments::Which::Name(name.clone()),
            };
            let found = call(&cli, op)?;
            match output {
                Some(path) => std::fs::write(path, &found.data)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout().lock(), &found.data)?,
            }
            Ok(())
        }
        Command::Tail(args) => {
            let cmd = picket::tail::Command {
                dsn: args.dsn.clone(),
                once: args.once,
                state: args.state.clone(),
                options: picket::tail::Options {
                    format: args.format.parse()?,
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
            print(*json, &answer, |_| {
                format!(
                    "sent a test email to {address} through {}\n",
                    mailer.server()
                )
            });
            Ok(())
        }
        Command::Alerts(cmd) => alerts_command(&cli, cmd),
        Command::Monitors { project, json } => {
            let op = manage::monitors::MonitorList {
                project: project.clone(),
            };
            print(*json, call(&cli, op)?.as_slice(), render::monitors);
            Ok(())
        }
        Command::Monitor(MonitorCommand::Mute {
            project,
            slug,
            off,
            json,
        }) => {
            let op = manage::monitors::MonitorMute {
                project: project.clone(),
                slug: slug.clone(),
                muted: !*off,
            };
            print(*json, &call(&cli, op)?, render::monitor_muted);
            Ok(())
        }
        Command::Monitor(MonitorCommand::Delete {
            project,
            slug,
            json,
        }) => {
            let op = manage::monitors::MonitorDelete {
                project: project.clone(),
                slug: slug.clone(),
            };
            print(*json, &call(&cli, op)?, |d| {
                format!("deleted monitor {}\n", d.deleted)
            });
            Ok(())
        }
        Command::Forward(ForwardCommand::DeadLetter { retry, json }) => {
            let answer = call(&cli, manage::forward::DeadLetters { retry: *retry })?;
            print(*json, &answer, render::dead_letters);
            Ok(())
        }
        Command::Issue(cmd) => issue_command(&cli, cmd),
        Command::Issues {
            project,
            status,
            query,
            json,
        } => {
            let op = issues::IssueList {
                project: project.clone(),
                status: status.clone(),
                query: query.clone(),
            };
            print(*json, call(&cli, op)?.as_slice(), render::issues);
            Ok(())
        }
        Command::Events {
            project,
            issue,
            query,
            limit,
            json,
        } => {
            let op = issues::EventList {
                project: project.clone(),
                issue: *issue,
                query: query.clone(),
                offset: 0,
                limit: *limit,
            };
            let page = call(&cli, op)?;
            print(*json, page.events.as_slice(), render::events);
            if !page.complete {
                eprintln!(
                    "picket: searched the newest {} events of the issue; older ones were not read",
                    page.examined
                );
            }
            Ok(())
        }
        Command::Event {
            project,
            event_id,
            json,
        } => {
            let op = issues::EventShow {
                project: project.clone(),
                event_id: event_id.clone(),
            };
            print(*json, &call(&cli, op)?, render::pretty);
            Ok(())
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

/// Applies an operation as the operator: through a running server, or on the file.
fn call<O: Operation>(cli: &Cli, op: O) -> anyhow::Result<O::Answer> {
    call_with_progress(cli, op, &|_, _| {})
}

fn call_with_progress<O: Operation>(
    cli: &Cli,
    op: O,
    progress: picket::store::backup::Progress<'_>,
) -> anyhow::Result<O::Answer> {
    let config = Arc::new(load_config(cli, None)?);
    Ok(manage::socket::call(config, op, progress)?)
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
    if password.chars().count() < manage::users::MIN_PASSWORD {
        bail!("the password must have at least 8 characters");
    }
    Ok(password)
}

/// `picket project …`
fn project_command(cli: &Cli, cmd: &ProjectCommand) -> anyhow::Result<()> {
    match cmd {
        ProjectCommand::Create { name, json } => {
            let op = projects::ProjectCreate { name: name.clone() };
            print(*json, &call(cli, op)?, render::project_created);
        }
        ProjectCommand::List { json } => {
            print(
                *json,
                call(cli, projects::ProjectList)?.as_slice(),
                render::projects,
            );
        }
        ProjectCommand::Retention {
            project,
            max_events,
            default: _,
            json,
        } => {
            let op = manage::retention::ProjectRetention {
                project: project.clone(),
                max_events: *max_events,
            };
            print(*json, &call(cli, op)?, render::project_retention);
        }
        ProjectCommand::Attachments {
            project,
            state,
            json,
        } => {
            let op = manage::attachments::ProjectAttachments {
                project: project.clone(),
                enabled: state == "on",
            };
            print(*json, &call(cli, op)?, render::project_attachments);
        }
        ProjectCommand::Forward {
            project,
            dsn,
            off: _,
            json,
        } => {
            let op = manage::forward::ProjectForward {
                project: project.clone(),
                dsn: dsn.clone(),
            };
            print(*json, &call(cli, op)?, render::project_forward);
        }
        ProjectCommand::Scrub {
            project,
            defaults,
            scrub_ip,
            sensitive,
            no_sensitive,
            safe,
            no_safe,
            rule,
            no_rule,
            json,
        } => {
            let on = |v: &Option<String>| v.as_deref().map(|v| v == "on");
            let op = manage::privacy::ProjectScrub {
                project: project.clone(),
                scrub: on(defaults),
                scrub_ip: on(scrub_ip),
                add_sensitive: sensitive.clone(),
                remove_sensitive: no_sensitive.clone(),
                add_safe: safe.clone(),
                remove_safe: no_safe.clone(),
                add_rules: rule
                    .iter()
                    .map(|r| manage::privacy::parse_rule(r))
                    .collect::<Result<_, _>>()?,
                remove_rules: no_rule.clone(),
            };
            print(*json, &call(cli, op)?, render::privacy);
        }
        ProjectCommand::Filters {
            project,
            browser_extensions,
            localhost,
            web_crawlers,
            legacy_browsers,
            error_message,
            no_error_message,
            release,
            no_release,
            sample_rate,
            no_sample_rate,
            json,
        } => {
            let on = |v: &Option<String>| v.as_deref().map(|v| v == "on");
            let op = manage::privacy::ProjectFilters {
                project: project.clone(),
                browser_extensions: on(browser_extensions),
                localhost: on(localhost),
                web_crawlers: on(web_crawlers),
                legacy_browsers: on(legacy_browsers),
                add_error_messages: error_message.clone(),
                remove_error_messages: no_error_message.clone(),
                add_releases: release.clone(),
                remove_releases: no_release.clone(),
                sample_rate: if *no_sample_rate {
                    Some(None)
                } else {
                    sample_rate.map(Some)
                },
            };
            print(*json, &call(cli, op)?, render::privacy);
        }
        ProjectCommand::Member {
            project,
            email,
            role,
            remove,
            json,
        } => {
            use manage::members::Role;
            let op = manage::members::ProjectMember {
                project: project.clone(),
                email: email.clone(),
                remove: *remove,
                role: role.as_deref().map(|r| {
                    if r == "owner" {
                        Role::Owner
                    } else {
                        Role::Member
                    }
                }),
            };
            print(*json, &call(cli, op)?, render::members);
        }
        ProjectCommand::Delete { project, yes, json } => {
            let op = projects::ProjectDelete {
                project: project.clone(),
                confirm: *yes,
            };
            print(*json, &call(cli, op)?, render::project_deleted);
        }
    }
    Ok(())
}

/// `picket key …`
fn user_command(cli: &Cli, cmd: &UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create { email, admin, json } => {
            let op = manage::users::UserCreate {
                email: email.clone(),
                admin: *admin,
            };
            print(*json, &call(cli, op)?, render::set_password_link);
        }
        UserCommand::List { json } => {
            print(
                *json,
                call(cli, manage::users::UserList)?.as_slice(),
                render::users,
            );
        }
        UserCommand::Role { email, role, json } => {
            let op = manage::users::UserSetAdmin {
                email: email.clone(),
                admin: role == "admin",
            };
            print(*json, &call(cli, op)?, |u| {
                render::users(std::slice::from_ref(u))
            });
        }
        UserCommand::ResetTwoFactor { email, json } => {
            let op = manage::sign_in::TwoFactorDisable {
                email: Some(email.clone()),
                code: String::new(),
            };
            print(*json, &call(cli, op)?, |u| {
                render::users(std::slice::from_ref(u))
            });
        }
        UserCommand::Link { email, json } => {
            let op = manage::users::UserResetLink {
                email: email.clone(),
            };
            print(*json, &call(cli, op)?, render::set_password_link);
        }
    }
    Ok(())
}

fn token_command(cli: &Cli, cmd: &TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            scopes,
            project,
            user,
            json,
        } => {
            let op = manage::tokens::TokenCreate {
                name: name.clone(),
                scopes: scopes.clone(),
                project: project.clone(),
                user: user.clone(),
            };
            print(*json, &call(cli, op)?, render::token_created);
        }
        TokenCommand::List { json } => {
            print(
                *json,
                call(cli, manage::tokens::TokenList)?.as_slice(),
                render::tokens,
            );
        }
        TokenCommand::Revoke { id, json } => {
            let op = manage::tokens::TokenRevoke { id: id.clone() };
            print(*json, &call(cli, op)?, render::token_revoked);
        }
    }
    Ok(())
}

fn key_command(cli: &Cli, cmd: &KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::List { project, json } => {
            let op = keys::KeyList {
                project: project.clone(),
            };
            print(*json, call(cli, op)?.as_slice(), render::keys);
        }
        KeyCommand::Create { project, json } => {
            let op = keys::KeyCreate {
                project: project.clone(),
            };
            print(*json, &call(cli, op)?, render::key_created);
        }
        KeyCommand::RateLimit {
            public_key,
            per_minute,
            burst,
            default: _,
            json,
        } => {
            let limit = per_minute.map(|per_minute| picket::ids::RateLimit {
                per_minute,
                burst: burst.unwrap_or(0),
            });
            let op = keys::KeyRateLimit {
                public_key: public_key.clone(),
                limit,
            };
            print(*json, &call(cli, op)?, render::key_rate_limit);
        }
        KeyCommand::Revoke { public_key, json } => {
            let op = keys::KeyRevoke {
                public_key: public_key.clone(),
            };
            print(*json, &call(cli, op)?, render::key_revoked);
        }
    }
    Ok(())
}

/// `picket alerts …`: every subcommand is one `Alerts` operation.
fn alerts_command(cli: &Cli, cmd: &AlertsCommand) -> anyhow::Result<()> {
    let (project, change, json) = match cmd {
        AlertsCommand::Show { project, json } => (project, AlertChange::Show, json),
        AlertsCommand::Set {
            project,
            new_issue,
            regression,
            reappeared,
            feedback,
            frequency,
            minutes,
            no_frequency,
            json,
        } => {
            let frequency = match (frequency, minutes, no_frequency) {
                (_, _, true) => Some(None),
                (Some(events), Some(minutes), _) => Some(Some(Frequency {
                    events: *events,
                    minutes: *minutes,
                })),
                _ => None,
            };
            let change = AlertChange::Rules {
                new_issue: *new_issue,
                regression: *regression,
                reappeared: *reappeared,
                feedback: *feedback,
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
                WebhookFormat::Slack
            } else {
                WebhookFormat::Json
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
    let op = Alerts {
        project: project.clone(),
        change,
    };
    print(*json, &call(cli, op)?, render::alerts);
    Ok(())
}

/// `picket issue …`: status changes and deletion.
fn issue_command(cli: &Cli, cmd: &IssueCommand) -> anyhow::Result<()> {
    let (project, issue, change, json) = match cmd {
        IssueCommand::Delete {
            project,
            issue,
            yes,
            json,
        } => {
            if !yes {
                let found = call(
                    cli,
                    issues::IssueShow {
                        project: project.clone(),
                        issue: *issue,
                    },
                )?;
                bail!(
                    "issue {} (\"{}\", {} events) was not deleted: add --yes to delete it and its events",
                    found.id,
                    found.title,
                    found.count
                );
            }
            let op = issues::IssueDelete {
                project: project.clone(),
                issue: *issue,
            };
            print(*json, &call(cli, op)?, render::issue_deleted);
            return Ok(());
        }
        IssueCommand::Resolve {
            project,
            issue,
            in_release,
            in_next_release,
            json,
        } => {
            let change = match (in_release, in_next_release) {
                (Some(release), _) => StatusChange::ResolveIn {
                    release: release.clone(),
                },
                (None, true) => StatusChange::ResolveInNextRelease,
                (None, false) => StatusChange::Resolve,
            };
            (project, issue, change, json)
        }
        IssueCommand::Assign {
            project,
            issue,
            email,
            none: _,
            json,
        } => {
            let op = manage::activity::IssueAssign {
                project: project.clone(),
                issue: *issue,
                to: email.clone(),
            };
            print(*json, &call(cli, op)?, render::issue_assigned);
            return Ok(());
        }
        IssueCommand::Comment {
            project,
            issue,
            text,
            json,
        } => {
            let op = manage::activity::IssueComment {
                project: project.clone(),
                issue: *issue,
                change: manage::activity::CommentChange::Add { text: text.clone() },
            };
            print(*json, call(cli, op)?.as_slice(), render::activity);
            return Ok(());
        }
        IssueCommand::Merge {
            project,
            into,
            from,
            json,
        } => {
            let op = manage::activity::IssueMerge {
                project: project.clone(),
                into: *into,
                from: from.clone(),
            };
            print(*json, &call(cli, op)?, render::issue_merged);
            return Ok(());
        }
        IssueCommand::Activity {
            project,
            issue,
            json,
        } => {
            let op = manage::activity::IssueActivity {
                project: project.clone(),
                issue: *issue,
            };
            print(*json, call(cli, op)?.as_slice(), render::activity);
            return Ok(());
        }
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
            until_users,
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
                    more_users: *until_users,
                },
                json,
            )
        }
    };
    let op = issues::IssueStatus {
        project: project.clone(),
        issue: *issue,
        change,
    };
    print(*json, &call(cli, op)?, render::issue_status);
    Ok(())
}
