//! Property checks for the cargo-fuzz target `config` (`fuzz/` at the repository root),
//! also run on random inputs in every `cargo test`.
//!
//! Any file text: loading never panics (nor runs out of memory); an error names a line that
//! exists; and a configuration that loads, written back as a file that sets every parameter
//! to its effective value (`$` written as `$$`, lists as arrays), loads to the same
//! configuration: expansion, list splitting and the value syntaxes agree with what
//! `mailroom config` shows. The `postconf` edits keep their promises on the same files
//! (`check_edits`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use toml::Value;

use crate::defaults::Environment;
use crate::params::{Access, PARAMS};
use crate::{load, Config, Profile};

/// A fixed environment, so the embedded default does not depend on who runs the fuzzer.
fn environment() -> &'static Environment {
    static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| Environment {
        mailroom_data: Some("/var/lib/mailroom-fuzz".into()),
        ..Environment::default()
    })
}

/// See the module doc.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `Config::load` reads the file as UTF-8 first
    };
    let config = match load::parse(text, None, environment()) {
        Ok(config) => config,
        Err(error) => {
            let lines = text.split('\n').count();
            assert!(
                error.line.is_none_or(|l| (1..=lines).contains(&l)),
                "{error}"
            );
            let _ = error.to_string();
            return;
        }
    };
    assert_eq!(
        crate::render(&config, crate::PrintMode::Effective)
            .lines()
            .count(),
        PARAMS.len() + 1
    );
    let written = write_back(&config);
    match load::parse(&written, None, environment()) {
        Ok(again) => assert_eq!(again, config, "changed when written back as\n{written}"),
        Err(error) => panic!("written back as\n{written}\nit fails: {error}"),
    }
    check_edits(text, &config);
}

/// `postconf` on a file that loads: every listing works, `-e` sets what it was asked to,
/// and `-#` of every parameter leaves a file that loads to the embedded default.
fn check_edits(text: &str, config: &Config) {
    for (defaults, only_file, expand) in [
        (false, false, false),
        (false, true, false),
        (true, false, false),
        (false, false, true),
        (false, true, true),
    ] {
        let show = crate::Show {
            defaults,
            only_file,
            expand,
        };
        assert!(
            crate::postconf_parameters(config, Some(text), show).is_ok(),
            "{show:?}"
        );
    }
    let edited = crate::set_parameters(text, &[("hopcount_limit".into(), "7".into())])
        .expect("a file that loads is TOML");
    if let Ok(again) = load::parse(&edited, None, environment()) {
        assert_eq!(again.hopcount_limit, 7, "set in\n{edited}");
    }
    let every: Vec<String> = PARAMS
        .iter()
        .map(|p| p.name.to_string())
        .chain(["profile".into()])
        .collect();
    let commented = crate::comment_out_parameters(text, &every).expect("a file that loads is TOML");
    match load::parse(&commented, None, environment()) {
        Ok(again) => assert_eq!(
            again,
            load::parse("", None, environment()).unwrap(),
            "left settings in\n{commented}"
        ),
        Err(error) => panic!("commented out as\n{commented}\nit fails: {error}"),
    }
}

/// Every parameter set to its effective value, as a TOML file.
fn write_back(config: &Config) -> String {
    let mut table: BTreeMap<String, Value> = PARAMS
        .iter()
        .map(|param| {
            // Delivery-time templates are read as written: their `$` is not doubled.
            let raw = crate::params::EXPANDED_AT_DELIVERY.contains(&param.name);
            let escape = |text: &str| match raw {
                true => Value::String(text.to_string()),
                false => Value::String(text.replace('$', "$$")),
            };
            let value = match &param.access {
                Access::Scalar { get, .. } => escape(&get(config)),
                Access::List { get, .. } => {
                    Value::Array(get(config).iter().map(|item| escape(item)).collect())
                }
            };
            (param.name.to_string(), value)
        })
        .collect();
    if config.profile == Profile::System {
        table.insert("profile".into(), Value::String("system".into()));
    }
    toml::to_string(&table).expect("a table of strings serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECES: &[&str] = &[
        "myhostname",
        "mydomain",
        "smtpd_banner",
        "alias_maps",
        "data_directory",
        "mydestination",
        "profile",
        "message_size_limit",
        "maximal_backoff_time",
        "smtpd_listen",
        " = ",
        "\"",
        "'",
        "[",
        "]",
        ",",
        "\n",
        "$",
        "${",
        "}",
        "$(",
        ")",
        "$$",
        "system",
        "10M",
        "5d",
        "yes",
        "0",
        "127.0.0.1:25",
        " ",
        "#",
        "é",
        "\\",
    ];

    /// Random configuration-shaped files on every run (the fuzz target goes further).
    #[test]
    fn random_config_files_keep_the_invariants() {
        let mut state = 0x000c_0f16_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        for _ in 0..1_000 {
            let text: String = (0..next() % 30)
                .map(|_| PIECES[next() % PIECES.len()])
                .collect();
            check_config(text.as_bytes());
        }
    }

    #[test]
    fn a_sample_file_round_trips() {
        let text = "myhostname = \"mx.example.org\"\nalias_maps = [\"/a b/aliases\"]\n\
                    smtpd_banner = \"$myhostname a$$b\"\nprofile = \"system\"\n";
        assert!(load::parse(text, None, environment()).is_ok());
        check_config(text.as_bytes());
    }

    /// The fuzz target's dictionary (`fuzz/dicts/config.dict`) names every parameter and its
    /// `$` reference, so a parameter added later is fuzzed by name too.
    #[test]
    fn the_fuzz_dictionary_names_every_parameter() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/dicts/config.dict");
        let dict = std::fs::read_to_string(path).expect("fuzz/dicts/config.dict");
        let entries: std::collections::BTreeSet<&str> = dict.lines().collect();
        let missing: Vec<&str> = PARAMS
            .iter()
            .map(|p| p.name)
            .filter(|name| {
                !entries.contains(format!("\"{name}\"").as_str())
                    || !entries.contains(format!("\"${name}\"").as_str())
            })
            .collect();
        assert!(missing.is_empty(), "add to {path}: {missing:?}");
    }
}
