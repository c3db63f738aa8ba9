use super::*;

const UNIT: Duration = Duration::from_secs(60);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

#[test]
fn rates_start_again_once_the_window_has_passed() {
    let anvil = Anvil::new();
    let t0 = Instant::now();
    for n in 1..=3 {
        assert_eq!(anvil.count(ip(1), Event::Mail, UNIT, t0), n);
    }
    assert_eq!(
        anvil.count(ip(1), Event::Mail, UNIT, t0 + UNIT),
        4,
        "still inside"
    );
    assert_eq!(anvil.rate(ip(1), Event::Rcpt, UNIT, t0), 0, "events apart");
    let later = t0 + UNIT + Duration::from_secs(1);
    assert_eq!(anvil.rate(ip(1), Event::Mail, UNIT, later), 0);
    assert_eq!(anvil.count(ip(1), Event::Mail, UNIT, later), 1);
    assert_eq!(
        anvil.count(ip(2), Event::Mail, UNIT, later),
        1,
        "per client"
    );
}

#[test]
fn connection_count_follows_sessions_and_rate_does_not() {
    let anvil = Anvil::new();
    let t0 = Instant::now();
    assert_eq!(anvil.connect(ip(1), UNIT, t0), (1, 1));
    assert_eq!(anvil.connect(ip(1), UNIT, t0), (2, 2));
    anvil.disconnect(ip(1));
    anvil.disconnect(ip(1));
    assert_eq!(anvil.connect(ip(1), UNIT, t0), (1, 3));
}

#[test]
fn idle_clients_are_forgotten_after_their_window() {
    let anvil = Anvil::new();
    let t0 = Instant::now();
    anvil.connect(ip(1), UNIT, t0);
    anvil.connect(ip(2), UNIT, t0);
    anvil.disconnect(ip(2));
    let later = t0 + 2 * UNIT;
    anvil.connect(ip(3), UNIT, later);
    assert_eq!(
        anvil.len(),
        2,
        "ip 2 idle and expired; ip 1 still connected"
    );
}

#[test]
fn a_flood_from_many_addresses_keeps_the_table_bounded() {
    let anvil = Anvil::new();
    let t0 = Instant::now();
    for n in 0..(MAX_CLIENTS as u32 + 10) {
        let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        anvil.count(address, Event::Connect, UNIT, t0);
    }
    assert!(anvil.len() <= MAX_CLIENTS, "{}", anvil.len());
}

fn settings(edit: impl FnOnce(&mut AnvilSettings)) -> Arc<AnvilSettings> {
    let mut s = AnvilSettings::from_config(&config::Config::embedded_default());
    s.exceptions = vec![Network::parse("192.0.2.100").unwrap()];
    edit(&mut s);
    Arc::new(s)
}

fn client(ip: IpAddr, label: &str) -> ClientId<'_> {
    ClientId {
        ip,
        label,
        service: "smtp",
        hostname: "mx.test",
    }
}

#[test]
fn connections_over_the_rate_get_postfix_reply_and_exempt_clients_none() {
    let anvil = Anvil::new();
    let s = settings(|s| s.connection_rate = 2);
    let who = client(ip(1), "unknown[192.0.2.1]");
    let first = admit(&anvil, &s, &who).unwrap();
    drop(first);
    let _second = admit(&anvil, &s, &who).unwrap();
    let refused = admit(&anvil, &s, &who).err().unwrap();
    assert_eq!(
        refused.summary(),
        "421 4.7.0 mx.test Error: too many connections from 192.0.2.1"
    );
    let exempt = client(ip(100), "unknown[192.0.2.100]");
    for _ in 0..5 {
        assert!(admit(&anvil, &s, &exempt).unwrap().is_none());
    }
}

#[test]
fn events_over_their_limits_get_postfix_replies() {
    let s = settings(|s| {
        s.message_rate = 1;
        s.recipient_rate = 1;
        s.auth_rate = 1;
    });
    let who = client(ip(1), "unknown[192.0.2.1]");
    let events = ClientEvents::new(Anvil::new(), s.clone(), who.ip);
    let expected = [
        (Event::Mail, "450 4.7.1 Error: too much mail from 192.0.2.1"),
        (
            Event::Rcpt,
            "450 4.7.1 Error: too many recipients from 192.0.2.1",
        ),
        (
            Event::Auth,
            "450 4.7.1 Error: too many AUTH commands from 192.0.2.1",
        ),
    ];
    for (event, reply) in expected {
        assert!(events.check(event, &who).is_none(), "{event:?} first");
        assert_eq!(events.check(event, &who).unwrap().summary(), reply);
    }
    let exempt = client(ip(100), "unknown[192.0.2.100]");
    let free = ClientEvents::new(Anvil::new(), s, exempt.ip);
    for _ in 0..3 {
        assert!(free.check(Event::Mail, &exempt).is_none());
    }
}

#[test]
fn starttls_is_refused_once_the_new_session_rate_is_reached() {
    let s = settings(|s| s.new_tls_rate = 1);
    let who = client(ip(1), "unknown[192.0.2.1]");
    let events = ClientEvents::new(Anvil::new(), s, who.ip);
    assert!(events.starttls(&who).is_none());
    assert!(events.check(Event::NewTls, &who).is_none());
    assert_eq!(
        events.starttls(&who).unwrap().summary(),
        "454 4.7.0 Error: too many new TLS sessions from unknown[192.0.2.1]"
    );
    assert_eq!(events.check(Event::NewTls, &who).unwrap().code, 421);
}

#[test]
fn ipv6_clients_count_by_their_slash_84_and_ipv4_clients_alone_by_default() {
    let s = settings(|s| s.connection_count = 2);
    assert_eq!(
        (s.ipv4_prefix, s.ipv6_prefix),
        (32, 84),
        "Postfix 3.8 defaults"
    );
    let anvil = Anvil::new();
    let v6 = |text: &str| -> IpAddr { text.parse().unwrap() };
    // Three addresses of one /64, inside the same /84: one client, so the third is over 2.
    let inside = [
        "2001:db8:1:2::1",
        "2001:db8:1:2:0:1::9",
        "2001:db8:1:2:0:fff:ffff:1",
    ];
    let labels: Vec<String> = inside.iter().map(|a| format!("unknown[{a}]")).collect();
    let first = admit(&anvil, &s, &client(v6(inside[0]), &labels[0])).unwrap();
    let second = admit(&anvil, &s, &client(v6(inside[1]), &labels[1])).unwrap();
    let refused = admit(&anvil, &s, &client(v6(inside[2]), &labels[2]))
        .err()
        .expect("the third address of the /84 is refused");
    assert_eq!(
        refused.summary(),
        "421 4.7.0 mx.test Error: too many connections from 2001:db8:1:2:0:fff:ffff:1",
        "the reply names the client's own address"
    );
    // The next /84 of the same /64 is another client.
    let next = "2001:db8:1:2:0:1000::1";
    let label = format!("unknown[{next}]");
    assert!(admit(&anvil, &s, &client(v6(next), &label)).is_ok());
    // IPv4: each address alone, so 192.0.2.1 and .2 have two sessions each.
    let _v4: Vec<_> = [1, 1, 2, 2]
        .into_iter()
        .map(|last| admit(&anvil, &s, &client(ip(last), "unknown")).unwrap())
        .collect();
    // Sessions closing free the network's count.
    drop((first, second));
    assert!(admit(&anvil, &s, &client(v6(inside[2]), &labels[2])).is_ok());
}

#[test]
fn prefix_lengths_choose_the_network_and_mapped_addresses_count_as_ipv4() {
    let s = settings(|s| {
        s.ipv4_prefix = 24;
        s.ipv6_prefix = 128;
    });
    let key = |text: &str| s.key(text.parse().unwrap()).to_string();
    assert_eq!(key("192.0.2.77"), "192.0.2.0");
    assert_eq!(key("::ffff:192.0.2.77"), "192.0.2.0");
    assert_eq!(
        key("2001:db8::77"),
        "2001:db8::77",
        "128 keeps each address"
    );
    let s = settings(|s| {
        s.ipv4_prefix = 1;
        s.ipv6_prefix = 1;
    });
    assert_eq!(
        s.key("203.0.113.9".parse().unwrap()).to_string(),
        "128.0.0.0"
    );
    assert_eq!(s.key("2001:db8::1".parse().unwrap()).to_string(), "::");
    // Rates aggregate the same way as counts.
    let s = settings(|s| {
        s.ipv4_prefix = 24;
        s.message_rate = 1;
    });
    let events = ClientEvents::new(Anvil::new(), s, ip(1));
    assert!(events.check(Event::Mail, &client(ip(1), "a")).is_none());
    assert_eq!(
        events
            .check(Event::Mail, &client(ip(2), "b"))
            .unwrap()
            .summary(),
        "450 4.7.1 Error: too much mail from 192.0.2.2"
    );
}
