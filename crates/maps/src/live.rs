//! A map list the daemon can reload (SIGHUP) while lookups go on: a reload that fails keeps
//! the previous maps, so one bad edit never empties a table.

use std::sync::{Arc, RwLock};

use crate::{MapError, Maps};

#[derive(Debug)]
pub struct Live {
    specs: Vec<String>,
    current: RwLock<Arc<Maps>>,
}

impl Live {
    /// Opens the maps; at start a bad map is an error (the caller refuses to start).
    pub fn open(specs: &[String]) -> Result<Live, MapError> {
        Ok(Live {
            specs: specs.to_vec(),
            current: RwLock::new(Arc::new(Maps::open(specs)?)),
        })
    }

    /// The maps in force now (cheap: an `Arc` clone).
    pub fn get(&self) -> Arc<Maps> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// Re-reads every file; on an error the previous maps stay in force and the error (with
    /// each `file:line`) is returned for the log.
    pub fn reload(&self) -> Result<(), MapError> {
        let fresh = Maps::open(&self.specs)?;
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(fresh);
        Ok(())
    }

    pub fn specs(&self) -> &[String] {
        &self.specs
    }
}
