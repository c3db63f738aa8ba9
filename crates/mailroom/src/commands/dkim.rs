//! `mailroom dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits 2048] [--dir DIR]`:
//! makes a DKIM key pair (like OpenDKIM's `opendkim-genkey`), writes the private key to
//! `DIR/DOMAIN.SELECTOR.key` with mode 0600 (never replacing a file), and prints the DNS TXT
//! record to publish and the `dkim_sign` entry that uses the key.
//!
//! DIR defaults to `dkim/` beside the configuration file (`/etc/mailroom/dkim` for a system
//! install), or under `data_directory` with the embedded default. The daemon reads the key
//! as `mail_owner`: when run as root, the key is given to that user.
//!
//! Exit status: 0 done; 64 bad usage (domain, selector, bits); 73 the key cannot be
//! written (it exists, or the directory is not writable); 69 no key could be made (no
//! `openssl` for an RSA key).

use std::path::{Path, PathBuf};

use agents::dkim::keygen::{self, KeyType};
use config::{Config, DkimSign};
use envelope::sysexits::{EX_CANTCREAT, EX_UNAVAILABLE, EX_USAGE};

/// Manage DKIM signing keys: keygen DOMAIN SELECTOR writes a key and prints its DNS record.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Make a key pair for DOMAIN under SELECTOR; print the TXT record to publish.
    Keygen {
        domain: String,
        selector: String,
        /// The key type: rsa (what every verifier knows) or ed25519 (RFC 8463; small).
        #[arg(long = "type", value_enum, default_value = "rsa")]
        kind: Kind,
        /// RSA key size (2048 to 4096).
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        /// Where to write the key (default: dkim/ beside the configuration file).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    Rsa,
    Ed25519,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    crate::edge::with_config(config, |cfg| match args.action {
        Action::Keygen {
            domain,
            selector,
            kind,
            bits,
            dir,
        } => keygen_command(cfg, &domain, &selector, kind, bits, dir),
    })
}

fn keygen_command(
    cfg: &Config,
    domain: &str,
    selector: &str,
    kind: Kind,
    bits: u32,
    dir: Option<PathBuf>,
) -> u8 {
    let dir = dir.unwrap_or_else(|| default_dir(cfg));
    // The same checks as the configuration's: what is made here can be configured.
    let entry = match DkimSign::parse(&format!("{domain}:{selector}:{}", dir.display())) {
        Ok(entry) => entry,
        Err(e) => return fail(EX_USAGE, &e),
    };
    let kind = match kind {
        Kind::Rsa => KeyType::Rsa,
        Kind::Ed25519 => KeyType::Ed25519,
    };
    let key = match keygen::generate(kind, bits) {
        Ok(key) => key,
        Err(e) if e.starts_with("--bits") => return fail(EX_USAGE, &e),
        Err(e) => return fail(EX_UNAVAILABLE, &e),
    };
    let path = match keygen::write_key(&dir, &entry.domain, &entry.selector, &key.pem) {
        Ok(path) => path,
        Err(e) => return fail(EX_CANTCREAT, &e),
    };
    give_to_mail_owner(cfg, &path);
    let entry = DkimSign { key: path, ..entry };
    println!(
        "{}",
        keygen::zone_line(&entry.selector, &entry.domain, &keygen::record_value(&key))
    );
    eprintln!(
        "mailroom: wrote {}; publish the TXT record above, then add to mailroom.toml:\n  dkim_sign = [{{ domain = \"{}\", selector = \"{}\", key = \"{}\" }}]",
        entry.key.display(),
        entry.domain,
        entry.selector,
        entry.key.display()
    );
    0
}

/// `dkim/` beside the configuration file, else under `data_directory`.
fn default_dir(cfg: &Config) -> PathBuf {
    match cfg.source.as_deref().and_then(Path::parent) {
        Some(parent) => parent.join("dkim"),
        None => cfg.data_directory.join("dkim"),
    }
}

/// As root: the daemon reads keys as `mail_owner`, so the key (and a directory made for it)
/// becomes theirs. Not being able to is only a warning: the operator may chown it.
fn give_to_mail_owner(cfg: &Config, path: &Path) {
    if sys::effective_uid() != 0 {
        return;
    }
    let Some(owner) = admin::check::user(&cfg.mail_owner) else {
        return;
    };
    if let Err(e) = admin::check::repair(path, Some(owner), None) {
        eprintln!(
            "mailroom: warning: cannot give {} to {}: {e}",
            path.display(),
            cfg.mail_owner
        );
    }
}

fn fail(code: u8, why: &str) -> u8 {
    eprintln!("mailroom: dkim keygen: {why}");
    code
}
