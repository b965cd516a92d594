//! The Postgres wire frontend: our handler set for datafusion-postgres's `DfSessionService`
//! (startup with SCRAM or loopback trust, the database-name check, COPY, error mapping,
//! cancel).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, LoginInfo, Password, ServerParameterProvider, StartupHandler,
};
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::copy::CopyHandler;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;

use crate::frontend::copy::ShoalCopyHandler;
use crate::frontend::errors;
use crate::frontend::settings::Settings;

/// The one database a Shoal cluster serves.
pub const DATABASE: &str = "shoal";

/// Users and passwords from `--password-file` (`user:password` per line).
#[derive(Debug, Clone, Default)]
pub struct Passwords(HashMap<String, String>);

impl Passwords {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut m = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (u, p) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected user:password", i + 1))?;
            if u.is_empty() || p.is_empty() {
                return Err(format!(
                    "line {}: empty user or password (an empty password would let anyone log in)",
                    i + 1
                ));
            }
            m.insert(u.to_string(), p.to_string());
        }
        if m.is_empty() {
            return Err("the password file lists no user".into());
        }
        Ok(Passwords(m))
    }
    pub fn single(user: &str, password: &str) -> Self {
        Passwords(HashMap::from([(user.to_string(), password.to_string())]))
    }
}

const SCRAM_ITERATIONS: usize = 4096;

#[derive(Debug)]
struct PasswordSource(Arc<Passwords>);

#[async_trait]
impl AuthSource for PasswordSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let salt: Vec<u8> = uuid::Uuid::new_v4().as_bytes()[..10].to_vec();
        // An unknown user gets a random password: the exchange fails like a wrong password.
        let password = self
            .0
             .0
            .get(user)
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Ok(Password::new(
            Some(salt.clone()),
            gen_salted_password(&password, &salt, SCRAM_ITERATIONS),
        ))
    }
}

fn check_database(message: &PgWireFrontendMessage) -> PgWireResult<()> {
    if let PgWireFrontendMessage::Startup(s) = message {
        let user = s.parameters.get("user").cloned().unwrap_or_default();
        let db = s.parameters.get("database").cloned().unwrap_or(user);
        if db != DATABASE {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "3D000".into(),
                format!("database \"{db}\" does not exist"),
            ))));
        }
    }
    Ok(())
}

/// Startup without a password (loopback only, or `--insecure`).
pub struct TrustStartup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for TrustStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }

    fn startup_parameters(
        &self,
        client_metadata: &HashMap<String, String>,
    ) -> Option<HashMap<String, String>> {
        Some(startup_parameters(client_metadata))
    }
}

/// The ParameterStatus values a new session starts with: PostgreSQL 15's reported
/// parameters, as the client's startup packet set them (see [`Settings`]).
fn startup_parameters(client_metadata: &HashMap<String, String>) -> HashMap<String, String> {
    let user = client_metadata
        .get("user")
        .map(String::as_str)
        .unwrap_or("");
    Settings::from_startup(user, client_metadata)
        .reported()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

/// [`startup_parameters`] for the password (SCRAM) startup.
pub struct ShoalParameters;

impl ServerParameterProvider for ShoalParameters {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        Some(startup_parameters(client.metadata()))
    }
}

/// How a login authenticates.
pub enum StartupAuth {
    Trust(TrustStartup),
    Scram(Box<SASLAuthStartupHandler<ShoalParameters>>),
}

/// Refuses plaintext logins where TLS is required and checks the database name, then hands
/// over to the real startup handler.
pub struct ShoalStartup {
    require_tls: bool,
    auth: StartupAuth,
}

/// Whether clients must use TLS, and the certificate channel binding binds to.
#[derive(Debug, Clone, Default)]
pub struct TlsPolicy {
    /// Plaintext logins are refused (28000).
    pub required: bool,
    /// The server certificate (PEM) when TLS is on: SCRAM-SHA-256-PLUS is then offered on
    /// TLS connections.
    pub cert_pem: Option<Vec<u8>>,
}

fn check_transport<C: ClientInfo>(
    require_tls: bool,
    client: &C,
    message: &PgWireFrontendMessage,
) -> PgWireResult<()> {
    if let PgWireFrontendMessage::Startup(s) = message {
        if require_tls && !client.is_secure() {
            let user = s.parameters.get("user").cloned().unwrap_or_default();
            let mut info = ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                format!(
                    "connection for user \"{user}\" from {} refused: this server requires TLS",
                    client.socket_addr().ip()
                ),
            );
            info.hint = Some("Connect with sslmode=require (or stricter).".into());
            return Err(PgWireError::UserError(Box::new(info)));
        }
    }
    Ok(())
}

#[async_trait]
impl StartupHandler for ShoalStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_transport(self.require_tls, client, &message)?;
        check_database(&message)?;
        match &self.auth {
            StartupAuth::Trust(t) => t.on_startup(client, message).await,
            StartupAuth::Scram(s) => s.on_startup(client, message).await,
        }
    }
}

pub struct ShoalErrorHandler;

impl ErrorHandler for ShoalErrorHandler {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        errors::rewrite(error);
        tracing::debug!(%error, "error sent to client");
    }
}

/// Everything a connection needs; one per server, handlers made per connection where state
/// must not be shared (SCRAM).
pub struct ShoalHandlers {
    pub session: Arc<crate::frontend::session::SessionQueryHandler>,
    pub passwords: Option<Arc<Passwords>>,
    tls: TlsPolicy,
    connections: Arc<ConnectionManager>,
    cancel: Arc<DefaultCancelHandler>,
}

impl ShoalHandlers {
    /// Fails when the certificate cannot be used for channel binding.
    pub fn new(
        session: Arc<crate::frontend::session::SessionQueryHandler>,
        passwords: Option<Arc<Passwords>>,
        tls: TlsPolicy,
    ) -> Result<Self, crate::ServerError> {
        if let Some(pem) = &tls.cert_pem {
            // The same check `startup_handler` relies on, made once at start.
            ScramAuth::new(Arc::new(PasswordSource(Arc::default())))
                .configure_certificate(pem)
                .map_err(|e| {
                    crate::ServerError::Startup(format!("TLS certificate for channel binding: {e}"))
                })?;
        }
        let connections = Arc::new(ConnectionManager::new());
        Ok(ShoalHandlers {
            session,
            passwords,
            tls,
            cancel: Arc::new(DefaultCancelHandler::new(Arc::clone(&connections))),
            connections,
        })
    }
}

impl PgWireServerHandlers for ShoalHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.session)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.session)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let auth = match &self.passwords {
            None => StartupAuth::Trust(TrustStartup {
                connections: Arc::clone(&self.connections),
            }),
            Some(p) => {
                let mut scram = ScramAuth::new(Arc::new(PasswordSource(Arc::clone(p))));
                scram.set_iterations(SCRAM_ITERATIONS);
                if let Some(pem) = &self.tls.cert_pem {
                    // Checked in `new`; a failure here would only leave channel binding off.
                    if let Err(e) = scram.configure_certificate(pem) {
                        tracing::warn!(error = %e, "channel binding unavailable");
                    }
                }
                let handler = SASLAuthStartupHandler::new(Arc::new(ShoalParameters))
                    .with_scram(scram)
                    .with_connection_manager(Arc::clone(&self.connections));
                StartupAuth::Scram(Box::new(handler))
            }
        };
        Arc::new(ShoalStartup {
            require_tls: self.tls.required,
            auth,
        })
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::new(ShoalCopyHandler)
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(ShoalErrorHandler)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}
