//! `smtpd_milter_maps` (Postfix 3.2): a `cidr:` table by client address gives a client its
//! own milter list instead of `smtpd_milters`, and `DISABLE` turns milters off for it. Here
//! `smtpd_milters` is a milter that is down (so `milter_default_action = tempfail` answers
//! MAIL with 451 for anyone it applies to); 127.0.0.2 is `DISABLE`d and sends mail freely;
//! 127.0.0.3 gets a real pymilter milter (Debian's python3-milter) that refuses its sender
//! and records the connect. Clients bind those loopback source addresses (any 127/8
//! address works on Linux without configuration).

use std::net::Ipv4Addr;

use testkit::*;

const SCRIPT: &str = r#"
class TestMilter(Recording):
    def connect(self, hostname, family, hostaddr):
        record(self, "connect", addr=hostaddr[0])
        return Milter.CONTINUE
    def envfrom(self, sender, *params):
        record(self, "mail", sender=sender)
        self.setreply("550", "5.7.1", "Refused by the mapped milter")
        return Milter.REJECT
"#;

#[test]
fn a_cidr_map_gives_each_client_its_milters_or_none() {
    if !PyMilter::available() {
        eprintln!(
            "skipped: Debian's python3-milter is not installed (scripts/test.sh installs it)"
        );
        return;
    }
    let mut world = World::builder().smtp().build();
    let milter = PyMilter::start(&world.env.root, SCRIPT);
    let cidr = world.env.root.join("milters.cidr");
    std::fs::write(
        &cidr,
        format!(
            "# client address -> milters\n\
             127.0.0.2/32 DISABLE\n\
             127.0.0.3/32 inet:127.0.0.1:{}\n",
            milter.port
        ),
    )
    .unwrap();
    world.configure(&format!(
        "smtpd_milters = [\"inet:127.0.0.1:{}\"]\n\
         smtpd_milter_maps = [\"cidr:{}\"]\n",
        free_port(),
        cidr.display()
    ));
    world.start();

    // Not in the map: smtpd_milters, down, so its default action (tempfail).
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 1), world.port);
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    let reply = c.cmd("MAIL FROM:<a@client.test>");
    assert_eq!(reply.code, 451, "{}", reply.text());
    c.ok("QUIT", 221);

    // DISABLE: no milter at all.
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), world.port);
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<a@client.test>", 250);
    c.ok("QUIT", 221);

    // Its own milter.
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 3), world.port);
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    let reply = c.cmd("MAIL FROM:<a@client.test>");
    assert!(
        reply.code == 550 && reply.text().contains("5.7.1 Refused by the mapped milter"),
        "{}",
        reply.text()
    );
    c.ok("QUIT", 221);

    let events = milter.wait_events("the mapped client's MAIL", |e| {
        e.iter().any(|e| e["event"] == "mail")
    });
    // Only the mapped client reached this milter.
    let connects: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "connect")
        .map(|e| e["addr"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(connects, ["127.0.0.3"], "{events:?}");
    world.wait_lines(
        &["NOQUEUE: milter-reject: MAIL from unknown[127.0.0.3]: 550 5.7.1 Refused by the mapped milter"],
        1,
    );
}
