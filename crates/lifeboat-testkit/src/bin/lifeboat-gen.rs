//! Test-data generator for scripts (bench.sh): the same deterministic
//! streams the tests use.
//!
//!     lifeboat-gen stream BYTES SEED OUT    half random, half SQL-like text
//!     lifeboat-gen change OUT FRACTION SEED change a fraction in place (10 runs)
//!     lifeboat-gen clinic SCALE_MB SEED     the clinic database as SQL on stdout
//!     lifeboat-gen bucket ENDPOINT BUCKET COUNT SEED MAX_BYTES [CHANGE_PERCENT]
//!         fill a bucket with generated documents (the bucket must exist);
//!         with CHANGE_PERCENT, rewrite that share of them with new content

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.get(1).map(String::as_str) {
        Some("stream") if args.len() == 5 => {
            lifeboat_testkit::data::write_mixed_stream(Path::new(&args[4]), num(2), num(3))
        }
        Some("clinic") if args.len() == 4 => {
            let out = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, out.lock());
            if let Err(e) = lifeboat_testkit::clinic::write_clinic_sql(&mut w, num(2), num(3))
                .and_then(|_| std::io::Write::flush(&mut w))
            {
                eprintln!("lifeboat-gen: {e}");
                std::process::exit(1);
            }
        }
        Some("change") if args.len() == 5 => {
            let fraction: f64 = args[3].parse().unwrap_or_else(|_| usage());
            let n =
                lifeboat_testkit::data::change_in_place(Path::new(&args[2]), fraction, 10, num(4));
            println!("changed {n} bytes");
        }
        Some("bucket") if args.len() == 7 || args.len() == 8 => {
            let s3 = lifeboat_testkit::bucket::S3Client::new(&args[2]);
            let mut objects = lifeboat_testkit::bucket::generate(num(4) as usize, num(5), num(6));
            if args.len() == 8 {
                let every = (100 / num(7).max(1)) as usize;
                objects = objects
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| i % every == every / 2)
                    .map(|(_, mut o)| {
                        o.seed ^= 0xDEAD_BEEF;
                        o
                    })
                    .collect();
            }
            s3.put_all(&args[3], &objects);
            let bytes: u64 = objects.iter().map(|o| o.size).sum();
            println!("wrote {} objects, {bytes} bytes", objects.len());
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: lifeboat-gen stream BYTES SEED OUT | change FILE FRACTION SEED | clinic SCALE_MB SEED \
         | bucket ENDPOINT BUCKET COUNT SEED MAX_BYTES [CHANGE_PERCENT]"
    );
    std::process::exit(2)
}
