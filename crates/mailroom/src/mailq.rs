//! `mailq` / `postqueue -p` / `postqueue -j`: the queue as Postfix shows it.
//!
//! Reads the store without its lock (the log is append-only, so a read races nothing) and
//! lists `maildrop/` too, so mail waiting for a stopped daemon is visible.

use config::Config;
use envelope::{Envelope, QueueId, RecipientState};
use std::io::{self, Write};

struct Row {
    queue_name: &'static str,
    id: QueueId,
    size: u64,
    envelope: Envelope,
}

pub fn list(cfg: &Config, json: bool) -> u8 {
    let rows = match collect(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mailq: fatal: {e}");
            return crate::cli::EX_TEMPFAIL;
        }
    };
    let out = io::stdout();
    let mut out = io::BufWriter::new(out.lock());
    let written = if json {
        write_json(&mut out, &rows)
    } else {
        write_text(&mut out, &rows)
    };
    // A closed pipe (`mailq | head -1`) is not an error worth a message.
    let _ = written.and_then(|_| out.flush());
    0
}

fn collect(cfg: &Config) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let dir = cfg.queue_directory.join("maildrop");
    if let Ok(files) = submit::maildrop::ready_files(&dir) {
        for (id, path) in files {
            if let Ok(d) = submit::maildrop::read(&path) {
                let env = Envelope::new(d.sender, d.recipients, d.arrival_time);
                rows.push(Row {
                    queue_name: "maildrop",
                    id,
                    size: d.message.len() as u64,
                    envelope: env,
                });
            }
        }
    }
    for e in queue::scan_readonly(&cfg.queue_directory).map_err(|e| e.to_string())? {
        rows.push(Row {
            queue_name: e.meta.queue.as_str(),
            id: e.id,
            size: e.size,
            envelope: e.meta.envelope,
        });
    }
    Ok(rows)
}

fn arrival(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%a %b %e %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn write_text(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "Mail queue is empty");
    }
    writeln!(
        out,
        "-Queue ID-       --Size-- ----Arrival Time---- -Sender/Recipient-------"
    )?;
    let mut bytes = 0;
    for r in rows {
        bytes += r.size;
        let mark = if r.queue_name == "hold" { "!" } else { " " };
        let sender = if r.envelope.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &r.envelope.sender
        };
        writeln!(
            out,
            "{}{mark} {:>8} {:<20}  {sender}",
            r.id,
            r.size,
            arrival(r.envelope.arrival_time)
        )?;
        for rcpt in r.envelope.recipients.iter().filter(|x| x.state.is_open()) {
            if let RecipientState::Deferred { reason } = &rcpt.state {
                writeln!(out, "{:17}({reason})", "")?;
            }
            writeln!(out, "{:49}{}", "", rcpt.address)?;
        }
        writeln!(out)?;
    }
    let n = rows.len();
    writeln!(
        out,
        "-- {} Kbytes in {n} Request{}.",
        bytes.div_ceil(1024),
        if n == 1 { "" } else { "s" }
    )
}

fn write_json(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    for r in rows {
        let recipients: Vec<serde_json::Value> = r
            .envelope
            .recipients
            .iter()
            .filter(|x| x.state.is_open())
            .map(|x| {
                let mut v = serde_json::json!({ "address": x.address });
                if let RecipientState::Deferred { reason } = &x.state {
                    v["delay_reason"] = reason.clone().into();
                }
                v
            })
            .collect();
        let obj = serde_json::json!({
            "queue_name": r.queue_name,
            "queue_id": r.id.to_string(),
            "arrival_time": r.envelope.arrival_time,
            "message_size": r.size,
            "forced_expire": false,
            "sender": r.envelope.sender,
            "recipients": recipients,
        });
        writeln!(out, "{obj}")?;
    }
    Ok(())
}
