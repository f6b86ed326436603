//! Tests of the group state machine: rebalances, timeouts, static
//! members, commits, protocol checks.

use super::*;
use crate::errors;

fn limits(delay_ms: u64) -> GroupLimits {
    GroupLimits {
        initial_rebalance_delay: Duration::from_millis(delay_ms),
        max_size: 100,
    }
}

fn at(base: Instant, ms: u64) -> Now {
    Now {
        at: base + Duration::from_millis(ms),
        wall_ms: ms as i64,
    }
}

fn params(member: &str, instance: Option<&str>) -> JoinParams {
    JoinParams {
        member_id: member.into(),
        instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_millis(10_000),
        rebalance_timeout: Duration::from_millis(30_000),
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"r")),
            ("roundrobin".into(), Bytes::from_static(b"rr")),
        ],
        require_known_member: true,
        member_id_random: rand::random(),
    }
}

/// Joins twice (MEMBER_ID_REQUIRED, then with the id); returns the id
/// and the channel the outcome comes on.
fn join_new(g: &mut Group, now: Now) -> (String, flume::Receiver<JoinOutcome>) {
    let (tx, rx) = flume::bounded(1);
    let id = match g.join(params("", None), tx, now) {
        Reply::Now(o) => {
            assert_eq!(o.error, errors::MEMBER_ID_REQUIRED);
            o.member_id
        }
        Reply::Later => panic!("first join must be answered"),
    };
    let (tx, rx2) = flume::bounded(1);
    drop(rx);
    assert!(matches!(g.join(params(&id, None), tx, now), Reply::Later));
    (id, rx2)
}

fn sync(
    g: &mut Group,
    id: &str,
    assign: &[(&str, &'static [u8])],
    now: Now,
) -> flume::Receiver<SyncOutcome> {
    let (tx, rx) = flume::bounded(1);
    let p = SyncParams {
        member_id: id.into(),
        instance_id: None,
        generation: g.generation,
        protocol_type: Some("consumer".into()),
        protocol_name: g.protocol.clone(),
        assignments: assign
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from_static(a)))
            .collect(),
    };
    match g.sync(p, tx, now) {
        Reply::Now(o) => {
            let (tx, rx) = flume::bounded(1);
            tx.send(o).unwrap();
            rx
        }
        Reply::Later => rx,
    }
}

#[test]
fn two_members_rebalance_to_generation_one_then_stable() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    let (a, ra) = join_new(&mut g, at(t, 0));
    // One member: done at once (no initial delay).
    let oa = ra.try_recv().unwrap();
    assert_eq!(
        (oa.error, oa.generation, oa.leader.as_str()),
        (errors::NONE, 1, a.as_str())
    );
    assert_eq!(oa.protocol_name.as_deref(), Some("range"));
    assert_eq!(g.state, GroupState::CompletingRebalance);
    // A second member arrives before the sync: a new round.
    let (b, rb) = join_new(&mut g, at(t, 10));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&a, None, 1, at(t, 20)),
        errors::REBALANCE_IN_PROGRESS
    );
    assert!(rb.try_recv().is_err(), "waits for a to rejoin");
    let (tx, ra) = flume::bounded(1);
    assert!(matches!(
        g.join(params(&a, None), tx, at(t, 30)),
        Reply::Later
    ));
    let oa = ra.try_recv().unwrap();
    let ob = rb.try_recv().unwrap();
    assert_eq!((oa.generation, ob.generation), (2, 2));
    assert_eq!(oa.members.len(), 2, "the leader gets the members");
    assert!(ob.members.is_empty());
    // Follower syncs first and waits; the leader's assignment answers both.
    let sb = sync(&mut g, &b, &[], at(t, 40));
    assert!(sb.try_recv().is_err());
    let sa = sync(&mut g, &a, &[(&a, b"A"), (&b, b"B")], at(t, 41));
    assert_eq!(g.take_persist(), Some(Persist::Assignment(2)));
    assert!(
        sa.try_recv().is_err(),
        "not before the assignment is durable"
    );
    g.sync_persisted(2, errors::NONE, at(t, 42));
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
    assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from_static(b"B"));
    assert_eq!(g.heartbeat(&b, None, 2, at(t, 50)), errors::NONE);
    assert_eq!(
        g.heartbeat(&b, None, 1, at(t, 50)),
        errors::ILLEGAL_GENERATION
    );
    assert_eq!(
        g.heartbeat("nobody", None, 2, at(t, 50)),
        errors::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn leave_and_session_expiry_rebalance_the_rest() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    let (a, _ra) = join_new(&mut g, at(t, 0));
    let (b, rb) = join_new(&mut g, at(t, 1));
    let (tx, _ra) = flume::bounded(1);
    g.join(params(&a, None), tx, at(t, 2));
    assert_eq!(rb.try_recv().unwrap().generation, 2);
    let _ = sync(&mut g, &a, &[(&a, b"A"), (&b, b"B")], at(t, 3));
    g.sync_persisted(2, errors::NONE, at(t, 3));
    assert_eq!(g.leave(&[(b.clone(), None)], at(t, 4)), vec![errors::NONE]);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        g.leave(&[(b.clone(), None)], at(t, 5)),
        vec![errors::UNKNOWN_MEMBER_ID]
    );
    let (tx, ra) = flume::bounded(1);
    g.join(params(&a, None), tx, at(t, 6));
    assert_eq!(ra.try_recv().unwrap().generation, 3);
    let _ = sync(&mut g, &a, &[(&a, b"AB")], at(t, 7));
    g.sync_persisted(3, errors::NONE, at(t, 7));
    // a stops heartbeating: after its session it is gone, the group empty.
    g.tick(at(t, 7 + 9_000));
    assert_eq!(g.state, GroupState::Stable);
    g.tick(at(t, 7 + 10_001));
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation, 4);
    assert!(g.members.is_empty());
}

#[test]
fn the_leader_leaving_hands_the_lead_to_a_member() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    let (a, _ra) = join_new(&mut g, at(t, 0));
    let (b, rb) = join_new(&mut g, at(t, 1));
    let (tx, _ra) = flume::bounded(1);
    g.join(params(&a, None), tx, at(t, 2));
    assert_eq!(rb.try_recv().unwrap().leader, a);
    let _ = sync(&mut g, &a, &[(&a, b"A"), (&b, b"B")], at(t, 3));
    g.sync_persisted(2, errors::NONE, at(t, 3));
    assert_eq!(g.leave(&[(a.clone(), None)], at(t, 4)), vec![errors::NONE]);
    assert_eq!(g.leader.as_deref(), Some(b.as_str()));
    let (tx, rb) = flume::bounded(1);
    g.join(params(&b, None), tx, at(t, 5));
    let ob = rb.try_recv().unwrap();
    assert_eq!((ob.generation, ob.leader.as_str()), (3, b.as_str()));
    assert_eq!(g.value().leader.as_deref(), Some(b.as_str()));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    let (a, _) = join_new(&mut g, at(t, 0));
    let (b, rb) = join_new(&mut g, at(t, 1));
    let (tx, _ra) = flume::bounded(1);
    g.join(params(&a, None), tx, at(t, 2));
    let _ = rb.try_recv().unwrap();
    let _ = sync(&mut g, &a, &[], at(t, 3));
    g.sync_persisted(2, errors::NONE, at(t, 3));
    // b rejoins (say, new subscription); a never does.
    let mut p = params(&b, None);
    p.protocols.reverse();
    let (tx, rb) = flume::bounded(1);
    assert!(matches!(g.join(p, tx, at(t, 4)), Reply::Later));
    // a heartbeats (so its session holds) but never rejoins.
    for ms in (5_000..=29_000).step_by(5_000) {
        assert_eq!(
            g.heartbeat(&a, None, 2, at(t, ms)),
            errors::REBALANCE_IN_PROGRESS
        );
        g.tick(at(t, ms));
    }
    assert!(rb.try_recv().is_err());
    g.tick(at(t, 4 + 30_001));
    let ob = rb.try_recv().unwrap();
    assert_eq!((ob.generation, ob.leader.as_str()), (3, b.as_str()));
    assert_eq!(g.members.len(), 1);
    assert_eq!(ob.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn initial_delay_waits_for_more_members() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(1000), at(t, 0));
    let (_a, ra) = join_new(&mut g, at(t, 0));
    let (_b, rb) = join_new(&mut g, at(t, 600));
    g.tick(at(t, 1100));
    assert!(ra.try_recv().is_err(), "delay runs from the last join");
    g.tick(at(t, 1601));
    assert_eq!(ra.try_recv().unwrap().generation, 1);
    assert_eq!(rb.try_recv().unwrap().generation, 1);
}

#[test]
fn static_member_returns_without_rebalance_and_fences_its_old_id() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    let (tx, rx) = flume::bounded(1);
    assert!(matches!(
        g.join(params("", Some("i1")), tx, at(t, 0)),
        Reply::Later
    ));
    let o = rx.try_recv().unwrap();
    let old = o.member_id.clone();
    let _ = sync(&mut g, &old, &[(&old, b"A")], at(t, 1));
    g.sync_persisted(1, errors::NONE, at(t, 1));
    // Restarted with the same instance id: a new member id, same generation.
    let (tx, _rx) = flume::bounded(1);
    let Reply::Now(o) = g.join(params("", Some("i1")), tx, at(t, 2)) else {
        panic!("a returning static member is answered at once");
    };
    assert_eq!((o.error, o.generation), (errors::NONE, 1));
    assert_ne!(o.member_id, old);
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(
        g.heartbeat(&old, Some("i1"), 1, at(t, 3)),
        errors::FENCED_INSTANCE_ID
    );
    assert_eq!(
        g.heartbeat(&o.member_id, Some("i1"), 1, at(t, 3)),
        errors::NONE
    );
    let s = sync(&mut g, &o.member_id, &[], at(t, 4));
    assert_eq!(s.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
    assert_eq!(
        g.leave(&[(String::new(), Some("i1".into()))], at(t, 5)),
        vec![errors::NONE]
    );
    assert_eq!(g.state, GroupState::Empty);
}

#[test]
fn commits_are_checked_against_the_generation() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    assert_eq!(g.check_commit("", None, -1, at(t, 0)), Ok(()));
    let (a, _) = join_new(&mut g, at(t, 0));
    assert_eq!(
        g.check_commit(&a, None, 1, at(t, 1)),
        Err(errors::REBALANCE_IN_PROGRESS)
    );
    let _ = sync(&mut g, &a, &[(&a, b"A")], at(t, 1));
    g.sync_persisted(1, errors::NONE, at(t, 1));
    assert_eq!(g.check_commit(&a, None, 1, at(t, 2)), Ok(()));
    assert_eq!(
        g.check_commit(&a, None, 0, at(t, 2)),
        Err(errors::ILLEGAL_GENERATION)
    );
    assert_eq!(
        g.check_commit("x", None, 1, at(t, 2)),
        Err(errors::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        g.check_commit("", None, -1, at(t, 2)),
        Err(errors::UNKNOWN_MEMBER_ID)
    );
}

#[test]
fn inconsistent_protocols_are_refused() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    let (_a, _) = join_new(&mut g, at(t, 0));
    let mut p = params("", None);
    p.protocols = vec![("sticky".into(), Bytes::new())];
    let (tx, _) = flume::bounded(1);
    let Reply::Now(o) = g.join(p, tx, at(t, 1)) else {
        panic!()
    };
    assert_eq!(o.error, errors::INCONSISTENT_GROUP_PROTOCOL);
}

#[test]
fn metadata_round_trips_through_restore() {
    let t = Instant::now();
    let mut g = Group::new("g".into(), limits(0), at(t, 0));
    let (a, _) = join_new(&mut g, at(t, 0));
    let _ = sync(&mut g, &a, &[(&a, b"A")], at(t, 1));
    g.sync_persisted(1, errors::NONE, at(t, 1));
    let r = Group::restore("g".into(), g.value(), limits(0), at(t, 5));
    assert_eq!(r.state, GroupState::Stable);
    assert_eq!(r.generation, 1);
    assert_eq!(r.leader.as_deref(), Some(a.as_str()));
    assert_eq!(r.members[&a].assignment, Bytes::from_static(b"A"));
}

#[test]
fn subscriptions_name_their_topics() {
    // version 1, ["t1", "t2"], userdata null...
    let mut meta = vec![0, 1, 0, 0, 0, 2, 0, 2, b't', b'1', 0, 2, b't', b'2'];
    meta.extend_from_slice(&[255, 255, 255, 255]);
    let got: Vec<String> = subscription_topics(&meta).collect();
    assert_eq!(got, vec!["t1", "t2"]);
    assert_eq!(
        subscription_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).count(),
        0
    );
}
