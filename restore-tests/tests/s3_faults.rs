//! An S3 repository behind a fault-injecting proxy: transient 503/500
//! answers, connection resets, bodies cut short, bytes flipped on the way
//! (either way) and stalled answers are retried and leave a repository that
//! verifies clean and restores byte-identical; corruption that does not go
//! away fails the restore as damage; a store that keeps refusing the
//! snapshot upload commits no snapshot (exit 7), and nothing earlier is
//! harmed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeboat_testkit::proxy::{Fault, Proxy};
use lifeboat_testkit::{data, sha256_file, Lifeboat, S3Server};

#[test]
fn transient_s3_errors_are_retried_and_a_refused_snapshot_is_not_committed() {
    let server = S3Server::start();
    let proxy = Proxy::start(&server.endpoint);
    let mut lb = Lifeboat::s3(&server, &format!("lb-faults-{}", std::process::id()));
    lb.set_env("LIFEBOAT_S3_ENDPOINT", &proxy.endpoint);
    lb.init();
    let src = lb.path("a.bin");
    data::write_mixed_stream(&src, 40 << 20, 5);
    let want = sha256_file(&src);

    // Every 3rd upload answers 503 (the retry of it goes through).
    let puts = Arc::new(Tally::default());
    let rule = puts.clone();
    proxy.set_faults(move |r| {
        if r.method == "PUT" && rule.next() % 3 == 2 {
            rule.hit(Fault::Status(503))
        } else {
            None
        }
    });
    lb.backup_command(&format!("cat '{}'", src.display()), "a.bin", &[])
        .ok();
    assert!(puts.injected() >= 2, "no fault was injected");

    // Every 4th download answers 500: the restore still comes back whole.
    let gets = Arc::new(Tally::default());
    let rule = gets.clone();
    proxy.set_faults(move |r| {
        if is_object_get(r) && rule.next() % 4 == 3 {
            rule.hit(Fault::Status(500))
        } else {
            None
        }
    });
    let out = lb.path("a.out");
    lb.restore_item("latest", "a.bin", &out).ok();
    assert_eq!(sha256_file(&out), want);
    assert!(gets.injected() >= 1, "no GET fault was injected");
    proxy.clear_fault();
    let v = lb.verify_read_data().ok();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);

    // The store refuses every snapshot upload: exit 7, no snapshot.
    proxy.set_fault(|r| (r.method == "PUT" && r.path.contains("/snapshots/")).then_some(500));
    let src2 = lb.path("b.bin");
    data::write_mixed_stream(&src2, 4 << 20, 6);
    let failed = lb
        .backup_command(&format!("cat '{}'", src2.display()), "b.bin", &[])
        .code(7);
    assert!(
        failed.stderr.contains("snapshot") || failed.stderr.contains("500"),
        "{}",
        failed.stderr
    );
    proxy.clear_fault();
    assert_eq!(
        lb.snapshots().len(),
        1,
        "a snapshot was committed over a refused upload"
    );
    let v = lb.verify_read_data().ok();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);
    let out = lb.path("a2.out");
    lb.restore_item("latest", "a.bin", &out).ok();
    assert_eq!(sha256_file(&out), want);
    // And the next backup goes through, reusing what was uploaded.
    lb.backup_command(&format!("cat '{}'", src2.display()), "b.bin", &[])
        .ok();
    assert_eq!(lb.snapshots().len(), 2);
}

/// Counts faults a rule injected.
#[derive(Default)]
struct Tally {
    seen: AtomicUsize,
    injected: AtomicUsize,
}

impl Tally {
    fn next(&self) -> usize {
        self.seen.fetch_add(1, Ordering::SeqCst)
    }
    fn hit(&self, f: Fault) -> Option<Fault> {
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(f)
    }
    fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

fn is_object_get(r: &lifeboat_testkit::proxy::Request) -> bool {
    r.method == "GET" && !r.query.contains("list-type")
}

#[test]
fn resets_cut_bodies_flipped_bytes_and_stalls_never_reach_a_snapshot_or_a_restore() {
    let server = S3Server::start();
    let proxy = Proxy::start(&server.endpoint);
    let mut lb = Lifeboat::s3(&server, &format!("lb-faults2-{}", std::process::id()));
    lb.set_env("LIFEBOAT_S3_ENDPOINT", &proxy.endpoint);
    lb.set_env("LIFEBOAT_S3_READ_TIMEOUT", "3");
    lb.init();
    let src = lb.path("a.bin");
    data::write_mixed_stream(&src, 40 << 20, 11);
    let want = sha256_file(&src);

    // Uploads: connections reset before the answer, bodies flipped on the
    // way to the server (which stores what it got: the ETag check must
    // catch it), and slow answers.
    let t = Arc::new(Tally::default());
    let rule = t.clone();
    proxy.set_faults(move |r| {
        if r.method != "PUT" {
            return None;
        }
        match rule.next() % 4 {
            0 => rule.hit(Fault::Reset),
            1 => rule.hit(Fault::CorruptRequest),
            2 => rule.hit(Fault::Delay(Duration::from_millis(700))),
            _ => None,
        }
    });
    lb.backup_command(&format!("cat '{}'", src.display()), "a.bin", &[])
        .ok();
    assert!(t.injected() >= 4, "only {} upload faults", t.injected());
    let upload_faults = t.injected();
    // What was committed is what was sent: read every byte back, unfaulted.
    proxy.clear_fault();
    let v = lb.verify_read_data().ok();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);

    // Downloads: the first read of each file meets a fault (in turn: a
    // flipped byte in the 200 body, a body cut short, a reset; for snapshot
    // files an answer that stalls past the read timeout); the retries go
    // through, as when a link or a proxy misbehaves for a while.
    let t = Arc::new(Tally::default());
    let first_reads = Arc::new(Mutex::new(HashSet::new()));
    let (rule, seen) = (t.clone(), first_reads.clone());
    proxy.set_faults(move |r| {
        if !is_object_get(r) || !seen.lock().expect("lock").insert(r.path.clone()) {
            return None;
        }
        if r.path.contains("/snapshots/") {
            return rule.hit(Fault::Delay(Duration::from_secs(6)));
        }
        match rule.next() % 3 {
            0 => rule.hit(Fault::CorruptResponse),
            1 => rule.hit(Fault::Truncate),
            _ => rule.hit(Fault::Reset),
        }
    });
    let out = lb.path("a.out");
    lb.restore_item("latest", "a.bin", &out).ok();
    assert_eq!(sha256_file(&out), want, "a restore through faults differs");
    assert!(t.injected() >= 6, "only {} download faults", t.injected());
    eprintln!(
        "s3 faults: {upload_faults} upload faults, {} download faults, restore identical",
        t.injected()
    );
    proxy.clear_fault();
    let v = lb.verify_read_data().ok();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);

    // Every pack read comes back damaged: the restore must fail as damaged
    // and name the pack, never pass corrupt bytes off as the item, and
    // verify must not pass either.
    proxy.set_faults(|r| {
        (is_object_get(r) && r.path.contains("/data/")).then_some(Fault::CorruptResponse)
    });
    let bad_out = lb.path("bad.out");
    let failed = lb.restore_item("latest", "a.bin", &bad_out).code(4);
    assert!(
        failed.stderr.contains("data/"),
        "the error does not name the pack:\n{}",
        failed.stderr
    );
    assert!(
        !bad_out.exists() || sha256_file(&bad_out) != want,
        "a failed restore left a complete-looking file"
    );
    let k = lb.restore_key.display().to_string();
    let v = lb.run(&["verify", "--read-data", "--restore-key-file", &k]);
    assert_eq!(v.code, 4, "verify passed over corrupt reads:\n{}", v.stdout);

    // Nothing stored was harmed: without the proxy's damage all is well.
    proxy.clear_fault();
    let out2 = lb.path("a2.out");
    lb.restore_item("latest", "a.bin", &out2).ok();
    assert_eq!(sha256_file(&out2), want);
}
