//! An S3 repository behind a fault-injecting proxy: transient 503/500
//! answers to uploads and downloads are retried and leave a repository that
//! verifies clean and restores byte-identical; a store that keeps refusing
//! the snapshot upload commits no snapshot (exit 7), and nothing earlier is
//! harmed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lifeboat_testkit::proxy::Proxy;
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
    let puts = Arc::new(AtomicUsize::new(0));
    let injected = Arc::new(AtomicUsize::new(0));
    let (p, i) = (puts.clone(), injected.clone());
    proxy.set_fault(move |r| {
        if r.method != "PUT" {
            return None;
        }
        if p.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
            i.fetch_add(1, Ordering::SeqCst);
            Some(503)
        } else {
            None
        }
    });
    lb.backup_command(&format!("cat '{}'", src.display()), "a.bin", &[])
        .ok();
    assert!(
        injected.load(Ordering::SeqCst) >= 2,
        "no fault was injected"
    );

    // Every 4th download answers 500: the restore still comes back whole.
    let gets = Arc::new(AtomicUsize::new(0));
    let failed_gets = Arc::new(AtomicUsize::new(0));
    let (g, f) = (gets.clone(), failed_gets.clone());
    proxy.set_fault(move |r| {
        if r.method != "GET" || r.query.contains("list-type") {
            return None;
        }
        if g.fetch_add(1, Ordering::SeqCst) % 4 == 3 {
            f.fetch_add(1, Ordering::SeqCst);
            Some(500)
        } else {
            None
        }
    });
    let out = lb.path("a.out");
    lb.restore_item("latest", "a.bin", &out).ok();
    assert_eq!(sha256_file(&out), want);
    assert!(
        failed_gets.load(Ordering::SeqCst) >= 1,
        "no GET fault was injected"
    );
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
