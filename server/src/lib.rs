//! The AutoLearn server: configuration, database, storage, dataset indexing and the HTTP API.
//! `main.rs` wraps it as the `autolearn` binary (server and CLI client).

pub mod artifact;
pub mod assist;
pub mod auth;
pub mod cleanup;
pub mod cli;
pub mod coco;
pub mod config;
pub mod db;
pub mod error;
pub mod export;
pub mod guard;
pub mod indexer;
pub mod login_limits;
pub mod metrics;
pub mod openapi;
pub mod prelabel;
pub mod preview;
pub mod recall;
pub mod routes;
pub mod serve;
pub mod storage;
pub mod thumbnail;
pub mod train;
pub mod upload;
pub mod voc;
pub mod yolo;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Config, Secret};
use crate::db::Db;
use crate::db::users::NewUser;
use crate::storage::Storage;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub config: Arc<Config>,
    pub metrics: Arc<metrics::Metrics>,
    /// Signs preview links; from `AUTOLEARN_SECRET` or generated once into the data dir.
    pub secret: Secret,
    /// Bounds concurrent image decodes (thumbnails), which are CPU- and memory-heavy.
    pub decode_permits: Arc<tokio::sync::Semaphore>,
    /// Recall models of deployed recall services.
    pub recall: Arc<recall::cache::RecallCache>,
    pub cf_jobs: Arc<recall::jobs::CfJobs>,
    /// Models of deployed predict services.
    pub predict: Arc<serve::PredictCache>,
    /// The password-hashing pool and failed-login backoff.
    pub login_limits: Arc<login_limits::LoginLimits>,
    /// Places for dataset exports running at once.
    pub export_permits: Arc<tokio::sync::Semaphore>,
    /// Image embeddings and label suggestions.
    pub assist: Arc<assist::Assist>,
    /// "Now" for expiry decisions (preview links).
    pub clock: Arc<Clock>,
}

/// The clock expiry decisions read: the system's, which tests move forward instead of
/// sleeping past an expiry.
#[derive(Default)]
pub struct Clock {
    offset_secs: std::sync::atomic::AtomicI64,
}

impl Clock {
    /// Unix seconds.
    pub fn unix_now(&self) -> i64 {
        db::unix_now() + self.offset_secs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves this server's "now" `secs` seconds ahead.
    pub fn advance(&self, secs: i64) {
        self.offset_secs
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A server bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to the database (running migrations), creates the first admin if there are
    /// no users, and binds the listen address (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let datasets = config.data_dir.join(config::DATASETS_DIR);
        std::fs::create_dir_all(&datasets)
            .with_context(|| format!("creating data dir {}", datasets.display()))?;
        let db = Db::connect(&config.database_url()).await?;
        bootstrap_admin(&db, &config).await?;
        let secret = load_secret(&config)?;
        let storage = Storage::new(config.s3.as_ref());
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let decode_permits = Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        ));
        let state = AppState {
            db,
            storage,
            config: Arc::new(config),
            metrics: Arc::default(),
            secret,
            decode_permits,
            recall: Arc::default(),
            cf_jobs: Arc::default(),
            predict: Arc::default(),
            login_limits: Arc::default(),
            export_permits: Arc::new(tokio::sync::Semaphore::new(export::MAX_CONCURRENT_EXPORTS)),
            assist: Arc::default(),
            clock: Arc::default(),
        };
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves (and runs the configured training workers) until `shutdown` resolves, then
    /// finishes requests in flight and lets workers stop their tasks.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let workers = Workers::start(&self.state, self.state.config.workers);
        let (stop_builder, builder_stop) = tokio::sync::watch::channel(false);
        let builder = tokio::spawn(recall::jobs::run(
            self.state.clone(),
            self.state.config.cf_builders,
            builder_stop,
        ));
        let app = routes::router(self.state);
        // The peer address throttles failed logins per client.
        let served = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
        let _ = stop_builder.send(true);
        let _ = builder.await;
        workers.stop().await;
        served
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Training workers of this process.
struct Workers {
    shutdown: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    fn start(state: &AppState, n: usize) -> Self {
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let handles = (0..n)
            .map(|i| {
                tokio::spawn(train::worker::run(
                    state.clone(),
                    train::worker::worker_name(i),
                    rx.clone(),
                ))
            })
            .collect();
        Self { shutdown, handles }
    }

    /// Asks workers to stop; a task in progress keeps its best model so far.
    async fn stop(self) {
        let _ = self.shutdown.send(true);
        for h in self.handles {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), h).await;
        }
    }
}

/// `autolearn worker`: training workers without the HTTP server, until Ctrl-C or SIGTERM.
pub async fn run_workers_only(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let db = Db::connect(&config.database_url()).await?;
    let secret = load_secret(&config)?;
    let storage = Storage::new(config.s3.as_ref());
    let n = config.workers;
    let state = AppState {
        db,
        storage,
        config: Arc::new(config),
        metrics: Arc::default(),
        secret,
        decode_permits: Arc::new(tokio::sync::Semaphore::new(1)),
        recall: Arc::default(),
        cf_jobs: Arc::default(),
        predict: Arc::default(),
        login_limits: Arc::default(),
        export_permits: Arc::new(tokio::sync::Semaphore::new(export::MAX_CONCURRENT_EXPORTS)),
        assist: Arc::default(),
        clock: Arc::default(),
    };
    let workers = Workers::start(&state, n);
    tracing::info!("{n} training worker(s) running; Ctrl-C or SIGTERM stops them");
    shutdown_signal().await;
    workers.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// On first start (no users), creates `admin` with the configured password, or a generated
/// one printed once.
async fn bootstrap_admin(db: &Db, config: &Config) -> anyhow::Result<()> {
    if db.user_count().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.0.clone(), false),
        None => (auth::generate_password(), true),
    };
    let hash =
        tokio::task::spawn_blocking(move || auth::hash_password(&password).map(|h| (h, password)))
            .await??;
    let new = NewUser {
        username: "admin",
        password_hash: &hash.0,
        is_admin: true,
        grants: &[],
    };
    match db.create_user(&new).await {
        Ok(_) => {}
        // Another server sharing the database created it first.
        Err(e) if db::is_unique_violation(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if generated {
        println!(
            "Created user `admin` with password: {}\n(shown once; set AUTOLEARN_ADMIN_PASSWORD to choose it)",
            hash.1
        );
    } else {
        tracing::info!("created user `admin` with the password from AUTOLEARN_ADMIN_PASSWORD");
    }
    Ok(())
}

/// This machine's name, which the names of its training workers and CF builders in the
/// database start with (so an operator sees where a task or build runs).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

fn load_secret(config: &Config) -> anyhow::Result<Secret> {
    if let Some(s) = &config.secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(Secret(s.trim().to_owned()));
    }
    let s = auth::new_token();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, s.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Secret(s))
}
