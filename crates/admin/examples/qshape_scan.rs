//! `qshape deferred` over a queue directory with the daemon down, either the way the tools
//! run it (`admin::execute`: a census of the log) or, with `--snapshot`, the way they did
//! before (a snapshot of the store's compact index walked entry by entry). Run under
//! `valgrind --tool=callgrind` for instruction counts of the two beside each other
//! (BENCHMARKS.md, issue 15 goal 6).
//!
//! Usage: `qshape_scan QUEUE_DIR [--snapshot]`; prints the TOTAL row.

use admin::engine::{Backend, Context, NoScheduler};
use admin::protocol::{Event, Request};
use admin::row::State;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .expect("usage: qshape_scan QUEUE_DIR [--snapshot]"),
    );
    let request = Request::Qshape {
        options: admin::qshape::Options::default(),
        queues: vec![State::Deferred],
    };
    let mut shape = None;
    let mut keep = |e: Event| {
        if let Event::Shape(s) = e {
            shape = Some(s);
        }
        Ok(())
    };
    if args.iter().any(|a| a == "--snapshot") {
        let snapshot = queue::Snapshot::scan(&dir).expect("scan");
        let ctx = Context {
            backend: Backend::Snapshot(&snapshot),
            scheduler: &NoScheduler,
            maildrop: dir.join("maildrop"),
            now: admin::duration::unix_now(),
        };
        ctx.run(&request, None, &mut keep).expect("qshape");
    } else {
        admin::execute(&dir, &request, None, keep).expect("qshape");
    }
    let shape = shape.expect("a shape");
    println!("{:?}", shape.rows.first());
}
