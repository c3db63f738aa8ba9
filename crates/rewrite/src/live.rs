//! The rewriter the daemon runs with now: SIGHUP builds a new one from the new
//! configuration; if any map has a syntax error the previous rewriter stays in force (one
//! bad edit never empties a table) and the error, with each `file:line`, is returned for
//! the log.

use std::sync::{Arc, RwLock};

use config::Config;
use maps::MapError;

use crate::Rewriter;

#[derive(Debug, Default)]
pub struct Live {
    current: RwLock<Arc<Rewriter>>,
}

impl Live {
    /// Opens every map; at start a bad map is an error (the daemon refuses to start).
    pub fn open(cfg: &Config) -> Result<Live, MapError> {
        Ok(Live::new(Rewriter::from_config(cfg)?))
    }

    pub fn new(rewriter: Rewriter) -> Live {
        Live {
            current: RwLock::new(Arc::new(rewriter)),
        }
    }

    /// The rewriter in force now (an `Arc` clone).
    pub fn get(&self) -> Arc<Rewriter> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// Installs a rewriter built elsewhere (the daemon builds it with the rest of a reload,
    /// so a reload is all or nothing).
    pub fn replace(&self, rewriter: Rewriter) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rewriter);
    }

    /// Re-reads every map of `cfg`; on an error nothing changes.
    pub fn reload(&self, cfg: &Config) -> Result<(), MapError> {
        let fresh = Rewriter::from_config(cfg)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}
