//! `mailroom man --dir DIR`: writes the manual pages into `DIR/man1`, `DIR/man5` and
//! `DIR/man8` (e.g. `DIR = /usr/share/man`). The command pages are generated from the clap
//! definitions, so a flag added to a subcommand is on its page at once; mailroom.toml(5) is
//! the hand-written text in `doc/mailroom.toml.5.in` with its parameter list generated from
//! the configuration's own table ([`config::parameter_reference`]), so it cannot drift.
//!
//! Pages are made on demand (install, packaging), never at build time: the binary carries
//! everything needed. Every subcommand gets `mailroom-NAME.N`; the programs Postfix ships
//! under those names (`sendmail`, `mailq`, `postconf`, …, reached through argv[0]) also get a
//! page under their Postfix name, left out with `--without-postfix-names` where another
//! MTA's pages must not be shadowed.

use envelope::sysexits::EX_CANTCREAT;
use roff::{bold, italic, roman, Roff};
use std::path::{Path, PathBuf};

/// Write the manual pages (man1/, man5/, man8/) into DIR.
#[derive(clap::Args)]
pub struct Args {
    /// Where to write them, e.g. /usr/local/share/man.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Leave out the pages named after Postfix's programs (sendmail.1, postconf.1, …).
    #[arg(long)]
    without_postfix_names: bool,
}

/// One manual page: `man<section>/<name>.<section>`.
pub struct Page {
    pub name: String,
    pub section: &'static str,
    pub text: String,
    /// A page under a Postfix program's name (`sendmail.1`), which another MTA may ship too.
    pub postfix_name: bool,
}

impl Page {
    /// The path under a man directory: `man1/sendmail.1`.
    pub fn path(&self) -> PathBuf {
        Path::new(&format!("man{}", self.section)).join(format!("{}.{}", self.name, self.section))
    }
}

/// Subcommands that are user commands (section 1, as Postfix files them); the rest are
/// administration (section 8).
const SECTION_1: &[&str] = &[
    "sendmail",
    "mailq",
    "postqueue",
    "newaliases",
    "postsuper",
    "postcat",
    "qshape",
    "config",
];

/// Subcommands that Postfix ships as programs of their own, by the name argv[0] dispatch
/// answers to.
const POSTFIX_PROGRAMS: &[(&str, &str)] = &[
    ("sendmail", "sendmail"),
    ("mailq", "mailq"),
    ("postqueue", "postqueue"),
    ("newaliases", "newaliases"),
    ("postsuper", "postsuper"),
    ("postcat", "postcat"),
    ("qshape", "qshape"),
    ("config", "postconf"),
];

pub fn run(cli: clap::Command, args: Args) -> u8 {
    match write_pages(cli, &args.dir, !args.without_postfix_names) {
        Ok(_) => 0,
        Err(why) => {
            eprintln!("mailroom: fatal: {why}");
            EX_CANTCREAT
        }
    }
}

/// Writes every page under `dir` (`dir/man1/sendmail.1`, …), creating the section
/// directories, and returns the paths written; the door for `mailroom install` and the
/// package build (the caller passes `Cli::command()`, as `commands/` cannot see `cli`).
pub fn write_pages(
    cli: clap::Command,
    dir: &Path,
    with_postfix_names: bool,
) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for page in pages(cli) {
        if page.postfix_name && !with_postfix_names {
            continue;
        }
        let path = dir.join(page.path());
        std::fs::create_dir_all(path.parent().unwrap_or(dir))
            .and_then(|()| std::fs::write(&path, &page.text))
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Every page: mailroom(8), one per subcommand, the Postfix-named ones, mailroom.toml(5).
pub fn pages(mut cli: clap::Command) -> Vec<Page> {
    cli.build();
    let mut pages = vec![top_page(cli.clone())];
    for sub in subcommands(&cli) {
        let name = sub.get_name();
        let section = section_of(name);
        let title = format!("mailroom-{name}");
        pages.push(command_page(sub.clone(), &title, section, false));
        if let Some((_, program)) = POSTFIX_PROGRAMS.iter().find(|(s, _)| *s == name) {
            let cmd = match *program {
                "postconf" => super::config::postconf_command(),
                _ => sub.clone().name(*program).bin_name(*program),
            };
            pages.push(command_page(
                cmd.display_name(*program),
                program,
                section,
                true,
            ));
        }
    }
    pages.push(Page {
        name: "mailroom.toml".into(),
        section: "5",
        text: ascii(&configuration_page()),
        postfix_name: false,
    });
    pages
}

/// The documented subcommands: not `help`, not hidden ones (`local-helper` is started by
/// `serve`, never by a person).
fn subcommands(cli: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cli.get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
}

fn section_of(subcommand: &str) -> &'static str {
    match SECTION_1.contains(&subcommand) {
        true => "1",
        false => "8",
    }
}

/// mailroom(8): clap_mangen's page, but with each subcommand listed under the section its
/// own page is in (clap_mangen would give them all the parent's).
fn top_page(cli: clap::Command) -> Page {
    let mut list = Roff::new();
    list.control("SH", ["SUBCOMMANDS"]);
    for sub in subcommands(&cli) {
        let name = sub.get_name();
        list.control("TP", []);
        list.text([bold(format!("mailroom-{name}({})", section_of(name)))]);
        list.text([roman(
            sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        )]);
    }
    let man = man_for(cli, "mailroom", "8");
    let mut text = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut text);
    let _ = man.render_name_section(&mut text);
    let _ = man.render_synopsis_section(&mut text);
    let _ = man.render_description_section(&mut text);
    let _ = man.render_options_section(&mut text);
    let mut text = String::from_utf8_lossy(&text).into_owned();
    text.push_str(&list.to_roff());
    text.push_str(&see_also("mailroom"));
    Page {
        name: "mailroom".into(),
        section: "8",
        text: ascii(&text),
        postfix_name: false,
    }
}

fn man_for(cmd: clap::Command, name: &str, section: &str) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .section(section)
        .source(format!("mailroom {}", env!("CARGO_PKG_VERSION")))
        .manual("mailroom")
}

fn command_page(cmd: clap::Command, name: &str, section: &'static str, postfix_name: bool) -> Page {
    let man = man_for(cmd, name, section);
    let mut text = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render(&mut text);
    let mut text = String::from_utf8_lossy(&text).into_owned();
    text.push_str(&see_also(name));
    Page {
        name: name.to_string(),
        section,
        text: ascii(&text),
        postfix_name,
    }
}

fn see_also(name: &str) -> String {
    let mut refs: Vec<&str> = vec!["mailroom(8)", "mailroom.toml(5)"];
    refs.retain(|r| !r.starts_with(&format!("{name}(")));
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(refs.join(", "))]);
    roff.to_roff()
}

/// The hand-written mailroom.toml(5) with its `@PARAMETERS@` line replaced by the list.
fn configuration_page() -> String {
    const INTRO: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../doc/mailroom.toml.5.in"
    ));
    let mut out = String::new();
    for line in INTRO.lines() {
        match line {
            "@PARAMETERS@" => out.push_str(&parameter_list()),
            _ => {
                out.push_str(&line.replace("@VERSION@", env!("CARGO_PKG_VERSION")));
                out.push('\n');
            }
        }
    }
    out
}

fn parameter_list() -> String {
    let mut roff = Roff::new();
    for doc in config::parameter_reference() {
        roff.control("TP", []);
        roff.text([bold(doc.name)]);
        let mut text = Vec::new();
        if doc.origin == config::Origin::Mailroom {
            text.push(italic("(mailroom only)"));
            text.push(roman(" "));
        }
        text.push(roman(doc.meaning));
        roff.text(text);
        roff.control("br", []);
        let mut default = vec![roman("Default: "), default_value(&doc.default)];
        if let Some(embedded) = &doc.embedded_default {
            default.extend([roman("; embedded profile: "), default_value(embedded)]);
        }
        default.push(roman("."));
        roff.text(default);
    }
    roff.to_roff()
}

/// Non-ASCII characters (the help texts' `…`) as groff's `\[uXXXX]` escapes, so a page
/// renders the same whether or not the formatter is told the input is UTF-8.
fn ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c.is_ascii() {
            true => out.push(c),
            false => out.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    out
}

fn default_value(value: &str) -> roff::Inline {
    match value.is_empty() {
        true => roman("empty"),
        false => bold(value),
    }
}
