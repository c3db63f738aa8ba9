//! One file per subcommand. Each defines its clap `Args`, whose doc comment is the
//! subcommand's `--help` line, and `run(config, args) -> exit code`; those Postfix also
//! ships as programs (`sendmail`, `mailq`, `postqueue`, `postsuper`, `postcat`, `qshape`,
//! `newaliases`) have a `run_as_*` for their own command line, reached through argv[0].
//!
//! Arrows point one way: `sendmail` uses `mailq` and `postqueue` (for `-bp` and `-q`),
//! `postqueue` uses `mailq`; every file may use the leaves `crate::edge` and
//! `crate::daemon`, and none uses `crate::cli` (`man` gets the clap definition passed in).

pub mod check;
pub mod config;
pub mod dkim;
pub mod doctor;
pub mod fleet;
pub mod fleet_views;
pub mod import_postfix;
pub mod install;
pub mod mailbox;
pub mod mailq;
pub mod man;
pub mod newaliases;
pub mod passwd;
pub mod postcat;
pub mod postmap;
pub mod postqueue;
pub mod postsuper;
pub mod qshape;
pub mod sendmail;
pub mod serve;
pub mod service;
pub mod start;
pub mod suspend;
