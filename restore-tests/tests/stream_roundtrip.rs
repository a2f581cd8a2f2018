//! A 1 GiB stream through the real binary: backup, restore byte-identical,
//! dedup of an identical second run, a 1% in-place change, peak memory; on
//! a local directory and on a real S3 server process.

use lifeboat_testkit::{data, sha256_file, Lifeboat, S3Server};

const GIB: u64 = 1 << 30;
/// The brief's memory goal, in KiB.
const RSS_LIMIT_KIB: u64 = 200 * 1024;

fn stat(out: &lifeboat_testkit::Output, key: &str) -> u64 {
    out.json()["stats"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no stats.{key} in {}", out.stdout))
}

fn round_trip(lb: &Lifeboat, check_data: bool) {
    lb.init();
    let src = lb.path("stream.bin");
    data::write_mixed_stream(&src, GIB, 7);
    let src_sha = sha256_file(&src);
    let cmd = format!("cat '{}'", src.display());
    let b = lb.backup_key.display().to_string();
    let backup_args = [
        "backup",
        "--json",
        "--backup-key-file",
        &b,
        "--stdin-from-command",
        &cmd,
        "--item",
        "dump.sql",
    ];

    // First backup: everything is new.
    let first = lb.run_measured(&backup_args).ok();
    let first_added = stat(&first, "added_bytes");
    assert_eq!(stat(&first, "bytes"), GIB);
    let rss = first.peak_rss_kib.expect("backup RSS measured");
    assert!(rss < RSS_LIMIT_KIB, "backup peak RSS {rss} KiB >= 200 MiB");
    // The random half cannot shrink, the text half must.
    assert!(
        first_added > GIB / 2 && first_added < GIB,
        "first backup added {first_added} bytes"
    );

    // Restore byte-identical, in bounded memory.
    let restored = lb.path("restored.bin");
    let k = lb.restore_key.display().to_string();
    let to = restored.display().to_string();
    let r = lb
        .run_measured(&[
            "restore",
            "--restore-key-file",
            &k,
            "latest",
            "--item",
            "dump.sql",
            "--to",
            &to,
        ])
        .ok();
    let rss = r.peak_rss_kib.expect("restore RSS measured");
    assert!(rss < RSS_LIMIT_KIB, "restore peak RSS {rss} KiB >= 200 MiB");
    assert_eq!(
        sha256_file(&restored),
        src_sha,
        "restored stream differs from the source"
    );
    std::fs::remove_file(&restored).expect("rm");

    // The same stream again adds < 1%.
    let second = lb.run(&backup_args).ok();
    let second_added = stat(&second, "added_bytes");
    assert!(
        (second_added as f64) < 0.01 * first_added as f64,
        "identical second backup added {second_added} bytes of {first_added}"
    );

    // 1% of the bytes changed in place (10 spread-out runs) adds < 5%.
    let changed = data::change_in_place(&src, 0.01, 10, 99);
    assert!(changed >= GIB / 101);
    let changed_sha = sha256_file(&src);
    let third = lb.run(&backup_args).ok();
    let third_added = stat(&third, "added_bytes");
    assert!(
        (third_added as f64) < 0.05 * first_added as f64,
        "backup after a 1% change added {third_added} bytes of {first_added}"
    );
    let third_id = third.json()["id"].as_str().expect("id").to_string();
    lb.restore_item(&third_id[..12], "dump.sql", &restored).ok();
    assert_eq!(
        sha256_file(&restored),
        changed_sha,
        "restored changed stream differs"
    );

    eprintln!(
        "{}: first added {first_added} B (backup RSS {} KiB, restore RSS {} KiB); identical rerun added {second_added} B ({:.3}%); 1% change added {third_added} B ({:.2}%)",
        lb.repo,
        first.peak_rss_kib.unwrap_or(0),
        r.peak_rss_kib.unwrap_or(0),
        100.0 * second_added as f64 / first_added as f64,
        100.0 * third_added as f64 / first_added as f64
    );
    // The older snapshot still restores the original bytes' checksum.
    let snaps = lb.snapshots();
    assert_eq!(snaps.len(), 3);
    if check_data {
        let v = lb.verify_read_data().ok();
        assert_eq!(v.json()["problems"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn one_gib_stream_round_trip_on_a_local_directory() {
    round_trip(&Lifeboat::local(), true);
}

#[test]
fn one_gib_stream_round_trip_on_an_s3_server() {
    let server = S3Server::start();
    round_trip(&Lifeboat::s3(&server, "lifeboat-roundtrip"), false);
}
