//! Test-data generator for scripts (bench.sh): the same deterministic
//! streams the tests use.
//!
//!     lifeboat-gen stream BYTES SEED OUT    half random, half SQL-like text
//!     lifeboat-gen change OUT FRACTION SEED change a fraction in place (10 runs)
//!     lifeboat-gen clinic SCALE_MB SEED     the clinic database as SQL on stdout
//!     lifeboat-gen bucket ENDPOINT BUCKET COUNT SEED MAX_BYTES [CHANGE_PERCENT]
//!         fill a bucket with generated documents (the bucket must exist);
//!         with CHANGE_PERCENT, rewrite that share of them with new content
//!     lifeboat-gen documents DB ENDPOINT BUCKET MAX_BYTES
//!         upload a document for every `r2` row of DB.medical_documents (in
//!         the local MariaDB) and set the row's sha256 and size_bytes to match
//!     lifeboat-gen render-fake PORT API_KEY SEED
//!         serve the fake Render API (the clinic deployment) until killed
//!     lifeboat-gen synth-s3 PORT BUCKET COUNT CHANGED_PER_MILLE
//!         serve a synthetic bucket of COUNT objects until killed
//!         (`POST /_synth/next`: a night of changes; `GET /_synth/counts`)

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
        Some("documents") if args.len() == 6 => documents(&args[2], &args[3], &args[4], num(5)),
        Some("render-fake") if args.len() == 5 => {
            let world = lifeboat_testkit::render::World::clinic(num(4));
            let fake =
                lifeboat_testkit::render::FakeRender::start_on(world, &args[3], num(2) as u16);
            println!("{}", fake.url);
            fake.wait();
        }
        Some("synth-s3") if args.len() == 6 => {
            let s3 = lifeboat_testkit::synth_s3::SynthS3::start_on(
                &args[3],
                num(4),
                num(5),
                num(2) as u16,
            );
            println!("{}", s3.endpoint);
            s3.wait();
        }
        _ => usage(),
    }
}

/// One object per `r2` document row, its row updated to the object's
/// SHA-256 and size, so the rows vs objects cross-check holds.
fn documents(db: &str, endpoint: &str, bucket: &str, max_bytes: u64) {
    match lifeboat_testkit::bucket::upload_documents(db, endpoint, bucket, max_bytes) {
        Ok((n, bytes)) => println!("uploaded {n} documents, {bytes} bytes"),
        Err(e) => {
            eprintln!("lifeboat-gen: {e}");
            std::process::exit(1);
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: lifeboat-gen stream BYTES SEED OUT | change FILE FRACTION SEED | clinic SCALE_MB SEED \
         | bucket ENDPOINT BUCKET COUNT SEED MAX_BYTES [CHANGE_PERCENT] \
         | documents DB ENDPOINT BUCKET MAX_BYTES | render-fake PORT API_KEY SEED \
         | synth-s3 PORT BUCKET COUNT CHANGED_PER_MILLE"
    );
    std::process::exit(2)
}
