//! `jhub`: the hub's command line. Runs the hub, or one of its
//! administrative commands (`token`, `upgrade-db`), or prints the
//! documented default configuration.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hub::auth::tokens;
use hub::config::{self, Config, ProcessEnv};

/// A multi-user Jupyter hub with a privilege-separated spawner.
///
/// Every configuration key is also a flag: --section.key=value (for
/// example --hub.hub_bind_url=http://127.0.0.1:8081), overriding the file.
#[derive(Debug, Parser)]
#[command(name = "jhub", version, about)]
struct Cli {
    /// The configuration file (default /etc/jhub/jhub.toml; a missing
    /// default file means all defaults).
    #[arg(long, short = 'f', global = true)]
    config: Option<PathBuf>,
    /// Print the default configuration, every key documented and
    /// commented out, and exit.
    #[arg(long)]
    generate_config: bool,
    /// Log format: pretty or json.
    #[arg(long, env = "JHUB_LOG_FORMAT", default_value = "pretty", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a new API token for an existing user.
    Token {
        /// The user.
        user: String,
        /// Scopes for the token (default: everything the user has).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A note stored with the token.
        #[arg(long, default_value = "command-line generated")]
        note: String,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<i64>,
    },
    /// Back up the database, then bring its schema up to date.
    UpgradeDb,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_else(|| "jhub".into());
    let (overrides, rest) = config::split_overrides(args.collect());
    let cli = Cli::parse_from(std::iter::once(argv0).chain(rest));
    if cli.generate_config {
        print!("{}", config::EXAMPLE);
        return ExitCode::SUCCESS;
    }
    init_tracing(cli.log_format);
    let loaded = match Config::load(cli.config.as_deref(), &overrides, &ProcessEnv) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("jhub: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jhub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None => hub::run(loaded).await.map_err(|e| e.to_string()),
            Some(Command::UpgradeDb) => upgrade_db(&loaded).await,
            Some(Command::Token {
                user,
                scopes,
                note,
                expires_in,
            }) => new_token(&loaded, &user, scopes, note, expires_in).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jhub: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn upgrade_db(loaded: &config::Loaded) -> Result<(), String> {
    let url = hub::db::DbUrl::parse(&loaded.config.hub.db_url)?;
    match hub::db::Db::backup(&url).await.map_err(|e| e.to_string())? {
        Some(copy) => eprintln!("jhub: backed up the database to {}", copy.display()),
        None => eprintln!("jhub: no database yet; creating it"),
    }
    let db = hub::db::Db::open(&url, true)
        .await
        .map_err(|e| e.to_string())?;
    db.close().await;
    eprintln!("jhub: the database schema is up to date");
    Ok(())
}

async fn new_token(
    loaded: &config::Loaded,
    user: &str,
    scopes: Vec<String>,
    note: String,
    expires_in: Option<i64>,
) -> Result<(), String> {
    let db = hub::open_database(loaded, false)
        .await
        .map_err(|e| e.to_string())?;
    let name = hub::names::normalize(user);
    let row = db
        .find_user(&name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("No such user: {name}"))?;
    let request = hub::api::tokens::TokenRequest {
        scopes: (!scopes.is_empty()).then_some(scopes),
        roles: None,
        note,
        expires_in,
    };
    let (token, _) =
        hub::api::tokens::issue(&db, hub::db::TokenOwner::User(row.id), &row.name, &request)
            .await
            .map_err(|e| e.to_string())?;
    db.close().await;
    debug_assert_eq!(tokens::prefix(&token).len(), tokens::PREFIX_LEN);
    println!("{token}");
    Ok(())
}
