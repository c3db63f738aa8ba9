//! What every delivery needs: the store, and the settings with what is built from them
//! (local agent, router, remote agent), swapped whole on SIGHUP; and, when the daemon runs
//! privilege-separated, the connection to the local delivery helper.

use crate::fleet::FleetLink;
use crate::remote::{NoRemote, RemoteAgent};
use crate::route::{RecipientErrors, Router};
use crate::settings::Settings;
use agents::local::helper::HelperClient;
use agents::LocalAgent;
use queue::Store;
use std::sync::{Arc, OnceLock, RwLock};

/// The store and the current settings.
pub struct Shared {
    pub store: Store,
    current: RwLock<Current>,
    /// Set when local deliveries go to the root helper; the in-process agent then only
    /// answers smtpd's recipient checks.
    helper: OnceLock<Arc<HelperClient>>,
    /// Set once at start: every router built from then on bounces what it names.
    errors: OnceLock<RecipientErrors>,
    /// Set once at start: cleanup's address rewriting for the copies local delivery
    /// forwards (Postfix sends them through cleanup too).
    cleanup: OnceLock<Cleanup>,
    /// Set once at start when the node is part of a fleet (or rate-limits alone).
    fleet: OnceLock<Arc<dyn FleetLink>>,
}

/// Rewrites a new message's envelope in place and returns its rewritten message, if the
/// headers changed (the daemon gives the address rewriter's cleanup step).
pub type Cleanup = Arc<dyn Fn(&mut envelope::Envelope, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

#[derive(Clone)]
struct Current {
    settings: Arc<Settings>,
    local: Arc<LocalAgent>,
    router: Arc<Router>,
    remote: Arc<dyn RemoteAgent>,
    /// The LMTP client (`SmtpSettings::lmtp_from_config`), once the daemon installs it.
    lmtp: Option<agents::SmtpClient>,
}

impl Shared {
    /// Fails if the routing configuration (transport maps, relayhost, content_filter) is bad.
    pub fn new(store: Store, settings: Settings, local: LocalAgent) -> Result<Shared, String> {
        let router = Router::new(&settings.routing)?;
        Ok(Shared {
            store,
            current: RwLock::new(Current {
                settings: Arc::new(settings),
                local: Arc::new(local),
                router: Arc::new(router),
                remote: Arc::new(NoRemote),
                lmtp: None,
            }),
            helper: OnceLock::new(),
            errors: OnceLock::new(),
            cleanup: OnceLock::new(),
            fleet: OnceLock::new(),
        })
    }

    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.current().settings
    }

    pub fn local(&self) -> Arc<LocalAgent> {
        self.current().local
    }

    /// The local delivery helper, when local deliveries go through one.
    pub fn local_helper(&self) -> Option<Arc<HelperClient>> {
        self.helper.get().cloned()
    }

    /// Sends local deliveries to the helper from now on (set once, at start).
    pub fn set_local_helper(&self, helper: Arc<HelperClient>) {
        let _ = self.helper.set(helper);
    }

    /// Routes the recipients `errors` names to a bounce from now on (set once, at start).
    pub fn set_recipient_errors(&self, errors: RecipientErrors) {
        let _ = self.errors.set(errors);
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        cur.router = Arc::new(self.with_errors((*cur.router).clone()));
    }

    /// Sends forwarded copies through `cleanup` from now on (set once, at start).
    pub fn set_cleanup(&self, cleanup: Cleanup) {
        let _ = self.cleanup.set(cleanup);
    }

    /// Asks `fleet` before every network delivery from now on (set once, at start).
    pub fn set_fleet(&self, fleet: Arc<dyn FleetLink>) {
        let _ = self.fleet.set(fleet);
    }

    pub fn fleet(&self) -> Option<&Arc<dyn FleetLink>> {
        self.fleet.get()
    }

    pub fn cleanup(&self) -> Option<&Cleanup> {
        self.cleanup.get()
    }

    fn with_errors(&self, router: Router) -> Router {
        match self.errors.get() {
            Some(errors) => router.with_recipient_errors(errors.clone()),
            None => router,
        }
    }

    pub fn router(&self) -> Arc<Router> {
        self.current().router
    }

    pub fn remote(&self) -> Arc<dyn RemoteAgent> {
        self.current().remote
    }

    /// Installs the SMTP client (or any remote agent).
    pub fn set_remote(&self, remote: Arc<dyn RemoteAgent>) {
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remote = remote;
    }

    pub fn lmtp(&self) -> Option<agents::SmtpClient> {
        self.current().lmtp
    }

    /// Installs the LMTP client (mailbox_transport, virtual_transport, `lmtp:` routes).
    pub fn set_lmtp(&self, client: agents::SmtpClient) {
        self.current.write().unwrap_or_else(|p| p.into_inner()).lmtp = Some(client);
    }

    /// Installs reloaded settings and local agent (SIGHUP); fails, changing nothing, if the
    /// new routing settings are bad.
    pub fn replace(&self, settings: Settings, local: LocalAgent) -> Result<(), String> {
        let router = self.with_errors(Router::new(&settings.routing)?);
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        cur.settings = Arc::new(settings);
        cur.local = Arc::new(local);
        cur.router = Arc::new(router);
        Ok(())
    }
}
