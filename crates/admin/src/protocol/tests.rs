//! Every control request and reply survives its trip through the wire form; the words are
//! the ones deployed clients and scripts send.

use super::*;
use crate::select::Selector;
use envelope::QueueId;

fn every_command() -> Vec<Command> {
    let id = QueueId::generate();
    let selector = Selector {
        from: Some("cron@example.com".into()),
        older_than: Some(7200),
        ..Selector::default()
    };
    vec![
        Command::Flush,
        Command::FlushSite("example.com".into()),
        Command::FlushId(id),
        Command::Reload,
        Command::Ping,
        Command::Admin(Request::Stats),
        Command::Admin(Request::Cat { id: id.to_string() }),
        Command::Admin(Request::List {
            selector: selector.clone(),
            compact_rows: true,
        }),
        Command::Admin(Request::Qshape {
            options: crate::qshape::Options::default(),
            queues: vec![State::Deferred, State::Hold],
        }),
        Command::Admin(Request::Super(superop::Request {
            action: superop::Action::Hold,
            all: false,
            ids: vec![id.to_string()],
            ids_follow: true,
            selector,
            dry_run: true,
        })),
    ]
}

#[test]
fn every_command_round_trips() {
    for command in every_command() {
        let line = command.encode().unwrap();
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        assert!(line.len() as u64 <= MAX_REQUEST);
        assert_eq!(Command::decode(&line), Ok(command.clone()), "{line:?}");
    }
}

#[test]
fn short_commands_keep_their_deployed_words() {
    let id = QueueId::generate();
    let words = [
        (Command::Flush, "flush\n".to_string()),
        (
            Command::FlushSite("d.example".into()),
            "flush-site d.example\n".into(),
        ),
        (Command::FlushId(id), format!("flush-id {id}\n")),
        (Command::Reload, "reload\n".into()),
        (Command::Ping, "ping\n".into()),
    ];
    for (command, line) in words {
        assert_eq!(command.encode().unwrap(), line);
    }
    let stats = Command::Admin(Request::Stats).encode().unwrap();
    assert_eq!(stats, "admin \"Stats\"\n");
}

#[test]
fn bad_lines_are_refused_in_the_form_of_their_kind() {
    let refused = |line: &str| Command::decode(line).unwrap_err();
    assert_eq!(
        refused("shutdown now\n"),
        Refusal::Command("unknown command \"shutdown\"".into())
    );
    assert_eq!(refused(""), Refusal::Command("unknown command \"\"".into()));
    assert!(
        matches!(refused("flush-id nonsense\n"), Refusal::Command(why) if why.contains("not a queue ID"))
    );
    assert!(
        matches!(refused("admin {\"Nope\":1}\n"), Refusal::Admin(why) if why.starts_with("bad admin request"))
    );
}

#[test]
fn only_ping_and_listings_are_public() {
    let public: Vec<bool> = every_command().iter().map(Command::is_public).collect();
    let expected = [
        false, false, false, false, true, false, false, true, true, false,
    ];
    assert_eq!(public, expected);
}

#[test]
fn every_reply_round_trips() {
    for reply in [
        Reply::Ok(None),
        Reply::Ok(Some(0)),
        Reply::Ok(Some(12345)),
        Reply::Error("unknown command \"x\"".into()),
        Reply::Unexpected("".into()),
        Reply::Unexpected("HTTP/1.1 400".into()),
    ] {
        let line = reply.encode();
        assert_eq!(Reply::decode(&line), reply, "{line:?}");
    }
    assert_eq!(Reply::decode("ok 3\n").to_string(), "ok 3");
}
