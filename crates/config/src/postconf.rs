//! What `postconf` (`mailroom config`) shows: each parameter's value *as written* — the
//! file's text, else the default's own template (`myorigin = $myhostname`) — or, with `-x`,
//! the final value the daemon uses, every `$name` expanded and every unit normalised.
//!
//! Postfix keeps the two apart the same way: `postconf myorigin` prints `$myhostname`,
//! `postconf -x myorigin` the host name. `-n` is "what the file sets" (not "what differs
//! from the default"), `-d` the profile's defaults.

use std::collections::BTreeMap;
use std::path::Path;

use crate::params;
use crate::resolve::{self, Template};
use crate::{load, print, Config, ConfigError, Profile};

/// Which values [`postconf_parameters`] lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Show {
    /// `-d`: the profile's defaults instead of the file's values.
    pub defaults: bool,
    /// `-n`: only the parameters the file sets.
    pub only_file: bool,
    /// `-x`: final values (`$name` expanded, units normalised) instead of the text as written.
    pub expand: bool,
}

/// The `(name, value)` pairs `postconf` prints, alphabetical by (Postfix) name, `profile`
/// included. `config` must have been loaded from `file_text` (`None`: no file).
pub fn postconf_parameters(
    config: &Config,
    file_text: Option<&str>,
    show: Show,
) -> Result<Vec<(String, String)>, ConfigError> {
    let written = match file_text {
        Some(text) => load::written(text, config.source.as_deref())?,
        None => BTreeMap::new(),
    };
    let base = profile_default(config.profile);
    let listing: BTreeMap<String, String> = if show.defaults {
        match show.expand {
            true => print::parameters(&base).into_iter().collect(),
            false => as_written_defaults(&base, false, &base.mydomain),
        }
    } else if show.expand {
        let all: BTreeMap<String, String> = print::parameters(config).into_iter().collect();
        match show.only_file {
            true => all
                .into_iter()
                .filter(|(name, _)| written.contains_key(name.as_str()))
                .collect(),
            false => all,
        }
    } else {
        let mut listing = match show.only_file {
            true => BTreeMap::new(),
            false => {
                let moved = written.contains_key("data_directory");
                as_written_defaults(&base, moved, &config.mydomain)
            }
        };
        listing.extend(written.iter().map(|(n, v)| (n.to_string(), v.clone())));
        listing
    };
    Ok(listing.into_iter().collect())
}

/// The file `Config::load` reads for `explicit` (`-c`), `$MAILROOM_CONFIG` or the system
/// path; `None` when the embedded default applies (no file).
pub fn config_file(explicit: Option<&Path>) -> Option<std::path::PathBuf> {
    load::current_path(explicit)
}

/// The name `postconf` lists a parameter under (aliases resolved), `profile` included;
/// `None` for a name mailroom does not know.
pub fn parameter_name(name: &str) -> Option<&'static str> {
    match name {
        "profile" => Some("profile"),
        _ => crate::params::find(name).map(|param| param.name),
    }
}

/// Every default as its template: derived defaults keep their `$name` references, literal
/// ones are printed as they are. `mydomain` (computed from the host name) is `mydomain`.
pub(crate) fn as_written_defaults(
    base: &Config,
    data_directory_moved: bool,
    mydomain: &str,
) -> BTreeMap<String, String> {
    let mut listing: BTreeMap<String, String> =
        resolve::default_sources(base, data_directory_moved)
            .into_iter()
            .map(|(name, source)| {
                let text = match source.template {
                    Template::Default => params::find(name)
                        .map(|param| resolve::default_value(param, base).to_text())
                        .unwrap_or_default(),
                    Template::Text(text) => text,
                    Template::Items(items) => items.join(", "),
                    Template::DomainOfHostname => mydomain.to_string(),
                };
                (name.to_string(), text)
            })
            .collect();
    listing.insert("profile".into(), base.profile.as_str().into());
    listing
}

fn profile_default(profile: Profile) -> Config {
    match profile {
        Profile::Embedded => Config::embedded_default(),
        Profile::System => Config::system_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(text: &str, show: Show) -> BTreeMap<String, String> {
        let config = Config::from_str(text, None).unwrap();
        postconf_parameters(&config, Some(text), show)
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn plain_listing_shows_values_as_written_and_default_templates() {
        let text = "profile = \"system\"\nqueue_minfree = \"20M\"\nmynetworks = [\"10.0.0.0/8\", \"$myhostname\"]\n";
        let all = listing(text, Show::default());
        assert_eq!(all["queue_minfree"], "20M");
        assert_eq!(all["mynetworks"], "10.0.0.0/8, $myhostname");
        assert_eq!(all["myorigin"], "$myhostname");
        assert_eq!(
            all["local_recipient_maps"],
            "unix:passwd.byname, $alias_maps"
        );
        assert_eq!(all["message_size_limit"], "10240000");
        assert_eq!(all["profile"], "system");
        assert_eq!(all.len(), crate::params::PARAMS.len() + 1);
    }

    #[test]
    fn expand_shows_final_values() {
        let text = "myhostname = \"mx.example.com\"\nqueue_minfree = \"20M\"\n";
        let all = listing(
            text,
            Show {
                expand: true,
                ..Show::default()
            },
        );
        assert_eq!(all["queue_minfree"], "20971520");
        assert_eq!(all["myorigin"], "mx.example.com");
        assert_eq!(all["mydomain"], "example.com");
    }

    #[test]
    fn only_file_lists_what_the_file_sets_even_when_it_equals_the_default() {
        let text = "hopcount_limit = 50\nbounce_notice_recipient = \"admin\"\n";
        let only = Show {
            only_file: true,
            ..Show::default()
        };
        let set = listing(text, only);
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec![
                ("2bounce_notice_recipient".to_string(), "admin".to_string()),
                ("hopcount_limit".to_string(), "50".to_string()),
            ]
        );
        let expanded = listing(
            "myorigin = \"$mydomain\"\nmyhostname = \"a.b.c\"\n",
            Show {
                expand: true,
                ..only
            },
        );
        assert_eq!(expanded["myorigin"], "b.c");
        assert_eq!(expanded.len(), 2);
    }

    #[test]
    fn defaults_ignore_the_file() {
        let text = "data_directory = \"/srv/m\"\nhopcount_limit = 7\n";
        let defaults = listing(
            text,
            Show {
                defaults: true,
                ..Show::default()
            },
        );
        assert_eq!(defaults["hopcount_limit"], "50");
        assert!(!defaults["queue_directory"].starts_with("/srv/m"));
        // Without -d, the moved data directory's derived default shows as its template.
        let plain = listing(text, Show::default());
        assert_eq!(plain["queue_directory"], "$data_directory/queue");
    }
}
