//! The `aviary` command line: one subcommand per job, each a thin layer over the crates below
//! (`control` to serve, `client` to talk to a running control plane, `model` for manifests).
//!
//! It owns argument parsing, output formats (tables, JSON, YAML) and exit codes. It must not hold
//! business logic: validation lives in `model`, consistency rules in `control`.
//!
//! Standard output goes through [`out`]: the `print!` and `println!` of this crate are its own
//! (defined here, before the modules, they shadow std's), so a closed pipe (`aviary get ... |
//! head -1`) ends a command quietly instead of panicking as std's do.

/// std's `print!`, writing through [`out::write`].
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// std's `println!`, writing through [`out::write`].
macro_rules! println {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod agent;
mod apply;
mod args;
mod canary;
mod delete;
mod deploy;
mod get;
mod logs;
mod out;
mod pipeline;
mod proxy;
mod route;
mod scope;
mod token;
mod top;
mod up;

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

pub use args::Args;
use args::{Command, Connection};

/// The `aviary` program. Invoked under the name `aviary-demo` (the link `aviary demo` makes when
/// no `aviary-demo` binary is around) it is the demo services instead, so one build of one
/// binary runs the whole demo.
pub fn main() -> ExitCode {
    let invoked_as = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if invoked_as.as_deref() == Some(up::DEMO_BINARY) {
        return demo::main();
    }
    run(<Args as clap::Parser>::parse())
}

pub fn run(args: Args) -> ExitCode {
    init_logging();
    raise_open_files_limit();
    let prints = !args.command.serves();
    if prints {
        out::stop_when_closed();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // Benchmarks give every proxy the same number of worker threads.
    if let Some(threads) = std::env::var("AVIARY_WORKER_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
    {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`| head`) wanted no more; flushing into it is no failure.
        Err(e) if prints && out::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: a cause whose text its parent's
/// message already shows (thiserror's `{source}`, a context repeating what it wraps) is
/// skipped. An unreachable control plane gets the hint a newcomer needs.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let refused = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<client::ClientError>(),
            Some(client::ClientError::Unreachable { error, .. }) if error.is_connect()
        )
    });
    if refused {
        line.push_str(" — is `aviary demo` running? (--control URL or AVIARY_CONTROL says where)");
    }
    line
}

async fn dispatch(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Control(opts) => serve_control(*opts).await,
        Command::Apply(opts) => apply::run(&opts.connection.client()?, opts).await,
        Command::Get(opts) => get::run(&opts.connection.client()?, opts).await,
        Command::Delete(opts) => delete::run(&opts.connection.client()?, opts).await,
        Command::Route(group) => {
            let args::RouteCommand::Set(opts) = group.command;
            route::set(&group.connection.client()?, opts).await
        }
        Command::Logs(opts) => logs::run(opts).await,
        Command::Proxy(opts) => {
            let c = opts.connection.clone();
            proxy::run(&c.control, c.ca.clone(), c.token(), opts).await
        }
        Command::Agent(opts) => {
            let c = opts.connection.clone();
            agent::run(&c.control, c.ca.clone(), c.token(), opts).await
        }
        Command::Token(group) => token::run(&group.connection.client()?, group.command).await,
        Command::Up(opts) => up::up(opts).await,
        Command::Demo(opts) => up::demo(opts).await,
        Command::Top(opts) => top::run(&opts.connection.client()?, opts).await,
        Command::Canary(group) => canary::run(&group.connection.client()?, group.command).await,
        Command::Deploy(opts) => deploy::run(&opts.connection.client()?, opts).await,
        Command::Pipeline(group) => pipeline::run(&group.connection.client()?, group.command).await,
    }
}

impl Command {
    /// Whether the command serves until stopped (then a closed stdout must not stop it) rather
    /// than print and exit.
    fn serves(&self) -> bool {
        matches!(
            self,
            Command::Control(_)
                | Command::Proxy(_)
                | Command::Agent(_)
                | Command::Up(_)
                | Command::Demo(_)
        )
    }
}

impl Connection {
    /// `--token`, or else the admin token of the default data directory.
    fn token(&self) -> Option<String> {
        self.token.clone().or_else(default_token)
    }

    /// A client of `--control` with `--token` and `--ca`. Built only by the commands that talk
    /// to the control plane, so a wrong AVIARY_CA does not stop `aviary control` or `logs`.
    fn client(&self) -> Result<client::Client, client::ClientError> {
        let options = client::ClientOptions {
            ca: self.ca.clone(),
        };
        client::Client::with_options(&self.control, &options).map(|c| c.with_token(self.token()))
    }
}

async fn serve_control(opts: args::ControlOpts) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let etcd = opts.etcd.config();
    let config = control::Config {
        listen: opts.listen,
        data_dir: Some(opts.data_dir.clone()),
        store: None,
        etcd,
        advertise_url: opts.etcd.advertise_url.clone(),
        identity: control::Identity {
            account: opts.account,
            region: opts.region,
        },
        auth: control::auth::AuthConfig {
            enabled: !opts.no_auth,
            secrets_dir: Some(opts.data_dir.clone()),
            allowed_hosts: opts.allowed_hosts,
            replica: None,
        },
        watch_history: store::HistoryLimits {
            bytes: opts.watch_history_bytes,
            ..store::HistoryLimits::default()
        },
        webhook_allow: opts.webhook_allow,
        tls: opts.tls.files(),
        // Workloads run on agents, which keep their logs on their own hosts.
        logs: None,
        limits: control::Limits {
            max_connections: opts.max_connections,
            header_read_timeout: opts.header_read_timeout,
            idle_timeout: opts.idle_timeout,
            ..control::Limits::default()
        },
        cert_ttl: opts.cert_ttl,
        builds_dir: Some(opts.data_dir.join("builds")),
        clock: control::clock::Clock::System,
    };
    let server = control::Control::bind(config, shutdown.clone()).await?;
    if !opts.no_auth {
        print_secrets(&opts.data_dir);
    }
    // Tests and scripts read this line to learn the port (and scheme) when listening on :0.
    println!("aviary control listening on {}", server.url());
    println!("web console at {}/ui/", server.url());
    tokio::spawn(stop_on_signal(shutdown));
    server.run().await?;
    Ok(())
}

/// Where the first start put the secrets, so the user knows what to point clients at.
pub fn print_secrets(dir: &std::path::Path) {
    let token = dir.join(control::auth::ADMIN_TOKEN_FILE);
    let credentials = dir.join(control::auth::CREDENTIALS_FILE);
    println!(
        "admin token:     {} (aviary finds it there by itself)",
        token.display()
    );
    println!(
        "AWS credentials: {} (AWS_SHARED_CREDENTIALS_FILE={} aws --endpoint-url ...)",
        credentials.display(),
        credentials.display()
    );
}

/// The admin token of the default data directory, when there is one: `aviary` run next to
/// `aviary demo` or `aviary control` needs no flag.
fn default_token() -> Option<String> {
    let dir = std::env::var_os("AVIARY_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(".aviary"));
    let text = std::fs::read_to_string(dir.join(control::auth::ADMIN_TOKEN_FILE)).ok()?;
    Some(text.trim().to_string())
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
pub async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    shutdown.cancel();
}

/// Raises the soft limit on open files to the hard one, as Go's runtime does: the servers'
/// connection limits (1024 for the control plane, 10,000 per proxy listener) are meant to be
/// what refuses connections, not a soft limit that is often 1024 files.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AVIARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests;
