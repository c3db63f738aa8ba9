//! From "what the file says plus what the profile defaults to" to one final value per
//! parameter, expanding `$name` references Postfix-style.
//!
//! Every parameter has a [`Source`]: a value from the file (a template, expanded), a derived
//! default (also a template: `myorigin = $myhostname`, `queue_directory =
//! $data_directory/queue` when the file moves `data_directory`), or a literal profile default
//! (never expanded, so a `$` in an environment-given path stays a `$`, and read from the
//! profile's configuration only when a template refers to it: most never are, and turning
//! every default into text up front was half the instructions of a `sendmail` run).
//! Resolution is lazy and memoized; a name met again while it is being resolved is a
//! reference cycle.
//!
//! List values are split into items *before* expansion, so a referenced value containing a
//! space (a data directory under `/home/John Doe`) stays one item. An item that is exactly
//! one reference to a list parameter (`$alias_maps`) splices in that whole list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::defaults::domain_of;
use crate::expand::{expand, sole_reference, ExpandError};
use crate::params::{self, Access, Param, PARAMS};
use crate::{Config, ConfigError};

/// The longest a value may grow by `$` expansion (text bytes, or list items with their
/// separators); longer is an error.
pub(crate) const MAX_EXPANDED: usize = 1 << 20;

/// Where a parameter's value comes from, before expansion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    /// The profile default, final: [`default_value`] of the profile's configuration.
    Default,
    /// A scalar template (file value or derived default).
    Text(String),
    /// A list of item templates (file value or derived default).
    Items(Vec<String>),
    /// Postfix's default `mydomain`: `$myhostname` minus its first label.
    DomainOfHostname,
}

/// A final value: scalar text, or list items.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(String),
    List(Vec<String>),
}

impl Value {
    /// The Postfix text form, as substituted for `$name` inside a larger string.
    pub(crate) fn to_text(&self) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::List(items) => items.join(", "),
        }
    }
}

pub(crate) struct Source {
    pub template: Template,
    /// The file line that set it; `None` for defaults.
    pub line: Option<usize>,
}

/// The default sources for a profile's `base` configuration. `data_directory_moved` is true
/// when the file sets `data_directory`, so the paths under it follow.
pub(crate) fn default_sources(
    base: &Config,
    data_directory_moved: bool,
) -> BTreeMap<&'static str, Source> {
    let mut sources: BTreeMap<&'static str, Source> = PARAMS
        .iter()
        .map(|param| {
            let source = Source {
                template: Template::Default,
                line: None,
            };
            (param.name, source)
        })
        .collect();
    let mut derive = |name: &'static str, template: Template| {
        sources.insert(
            name,
            Source {
                template,
                line: None,
            },
        );
    };
    derive("mydomain", Template::DomainOfHostname);
    derive("myorigin", Template::Text("$myhostname".into()));
    derive(
        "mydestination",
        items(&["$myhostname", "localhost.$mydomain", "localhost"]),
    );
    if data_directory_moved {
        derive(
            "queue_directory",
            Template::Text("$data_directory/queue".into()),
        );
        derive(
            "mail_spool_directory",
            Template::Text("$data_directory/mail".into()),
        );
        derive("alias_maps", items(&["$data_directory/aliases"]));
        derive(
            "smtpd_sasl_password_file",
            Template::Text("$data_directory/passwd".into()),
        );
    }
    derive("virtual_mailbox_domains", items(&["$virtual_mailbox_maps"]));
    derive("smtp_helo_name", Template::Text("$myhostname".into()));
    derive(
        "smtpd_client_event_limit_exceptions",
        items(&["$mynetworks"]),
    );
    derive("mime_header_checks", items(&["$header_checks"]));
    derive("nested_header_checks", items(&["$header_checks"]));
    derive(
        "milter_macro_daemon_name",
        Template::Text("$myhostname".into()),
    );
    derive(
        "lmtp_destination_concurrency_limit",
        Template::Text("$default_destination_concurrency_limit".into()),
    );
    derive(
        "smtpd_banner",
        Template::Text("$myhostname ESMTP mailroom".into()),
    );
    // Postfix: a domain is a virtual alias domain when it is a key of virtual_alias_maps.
    derive("virtual_alias_domains", items(&["$virtual_alias_maps"]));
    if !base.local_recipient_maps.is_empty() {
        // The system profile: Postfix's `unix:passwd.byname $alias_maps`, so a file that
        // changes alias_maps changes who is a known recipient too.
        derive(
            "local_recipient_maps",
            items(&["unix:passwd.byname", "$alias_maps"]),
        );
    }
    sources
}

/// A parameter's value in the profile's configuration `base`.
pub(crate) fn default_value(param: &Param, base: &Config) -> Value {
    match &param.access {
        Access::Scalar { get, .. } => Value::Text(get(base)),
        Access::List { get, .. } => Value::List(get(base)),
    }
}

fn items(templates: &[&str]) -> Template {
    Template::Items(templates.iter().map(|item| item.to_string()).collect())
}

/// Resolves every source and writes the non-literal ones into a copy of `base`.
pub(crate) fn apply(
    base: Config,
    sources: BTreeMap<&'static str, Source>,
    file: Option<&Path>,
) -> Result<Config, ConfigError> {
    let mut resolver = Resolver {
        base: &base,
        sources,
        file: file.map(Path::to_path_buf),
        done: BTreeMap::new(),
    };
    let mut values = Vec::new();
    for param in PARAMS {
        if matches!(resolver.sources[param.name].template, Template::Default) {
            continue;
        }
        values.push((param, resolver.resolve(param.name, &mut Vec::new())?));
    }
    let Resolver { sources, file, .. } = resolver;
    let mut config = base;
    for (param, value) in values {
        let outcome = match (&param.access, value) {
            (Access::Scalar { set, .. }, value) => set(&mut config, &value.to_text()),
            (Access::List { set, .. }, Value::List(items)) => set(&mut config, items),
            (Access::List { set, .. }, Value::Text(text)) => set(&mut config, vec![text]),
        };
        outcome.map_err(|message| ConfigError {
            file: file.clone(),
            line: sources.get(param.name).and_then(|source| source.line),
            key: param.name.to_string(),
            message,
        })?;
    }
    Ok(config)
}

/// A value is one line, as in Postfix's main.cf: it goes into SMTP replies, headers and log
/// lines, where a line break (a TOML `"\n"`) would forge one. Tabs are whitespace.
fn control_character(value: &Value) -> Option<char> {
    let find = |text: &str| text.chars().find(|&c| c.is_control() && c != '\t');
    match value {
        Value::Text(text) => find(text),
        Value::List(items) => items.iter().find_map(|item| find(item)),
    }
}

struct Resolver<'a> {
    base: &'a Config,
    sources: BTreeMap<&'static str, Source>,
    file: Option<PathBuf>,
    done: BTreeMap<&'static str, Value>,
}

impl Resolver<'_> {
    fn resolve(
        &mut self,
        name: &'static str,
        stack: &mut Vec<&'static str>,
    ) -> Result<Value, ConfigError> {
        if let Some(value) = self.done.get(name) {
            return Ok(value.clone());
        }
        stack.push(name);
        let value = match self.sources[name].template.clone() {
            Template::Default => match params::find(name) {
                Some(param) => default_value(param, self.base),
                None => Value::Text(String::new()),
            },
            Template::Text(text) if params::EXPANDED_AT_DELIVERY.contains(&name) => {
                Value::Text(text)
            }
            Template::Text(text) => Value::Text(self.expand_text(name, &text, stack)?),
            Template::Items(templates) => Value::List(self.expand_items(name, &templates, stack)?),
            Template::DomainOfHostname => {
                let host = self.lookup(name, "myhostname", stack)?;
                Value::Text(domain_of(&host.to_text()))
            }
        };
        if let Some(c) = control_character(&value) {
            let message = format!("control character {c:?} in value (a value is one line)");
            return Err(self.error(name, message));
        }
        stack.pop();
        self.done.insert(name, value.clone());
        Ok(value)
    }

    fn expand_text(
        &mut self,
        name: &'static str,
        text: &str,
        stack: &mut Vec<&'static str>,
    ) -> Result<String, ConfigError> {
        let mut spliced = 0;
        expand(text, |reference| {
            let value = self.lookup(name, reference, stack)?.to_text();
            spliced += value.len();
            self.within_limit(name, spliced)?;
            Ok(value)
        })
        .map_err(|error| match error {
            ExpandError::Syntax(message) => self.error(name, message),
            ExpandError::Lookup(error) => error,
        })
    }

    fn expand_items(
        &mut self,
        name: &'static str,
        templates: &[String],
        stack: &mut Vec<&'static str>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        let mut size = 0;
        for template in templates {
            let before = out.len();
            match sole_reference(template) {
                Some(reference) => match self.lookup(name, reference, stack)? {
                    Value::List(items) => out.extend(items),
                    Value::Text(text) => out.push(text),
                },
                None => out.push(self.expand_text(name, template, stack)?),
            }
            size += out[before..]
                .iter()
                .map(|item| item.len() + 2)
                .sum::<usize>();
            self.within_limit(name, size)?;
        }
        // Trimmed like the items a file writes (array items are trimmed, string lists split
        // at whitespace): `myhostname = "mx "` makes `mydestination` hold `mx`, not `mx `.
        Ok(out
            .into_iter()
            .map(|item| item.trim().to_string())
            .filter(|item| !item.is_empty())
            .collect())
    }

    /// The value of `$reference`, met while resolving `name`.
    fn lookup(
        &mut self,
        name: &'static str,
        reference: &str,
        stack: &mut Vec<&'static str>,
    ) -> Result<Value, ConfigError> {
        let Some(param) = params::find(reference) else {
            return Err(self.error(name, format!("unknown parameter ${reference} in value")));
        };
        if stack.contains(&param.name) {
            return Err(self.error(name, format!("recursive reference to ${reference}")));
        }
        self.resolve(param.name, stack)
    }

    /// References that multiply (`a = "$b$b$b$b"`, `b = "$c$c$c$c"`, …) grow a value
    /// exponentially: a 1 KB file asked for 42 GB. No real value comes near the limit.
    fn within_limit(&self, name: &str, size: usize) -> Result<(), ConfigError> {
        match size > MAX_EXPANDED {
            true => Err(self.error(
                name,
                format!("value longer than {MAX_EXPANDED} bytes after $ expansion"),
            )),
            false => Ok(()),
        }
    }

    fn error(&self, name: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.sources.get(name).and_then(|source| source.line),
            key: name.to_string(),
            message,
        }
    }
}
