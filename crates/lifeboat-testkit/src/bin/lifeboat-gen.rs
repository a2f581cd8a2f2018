//! Test-data generator for scripts (bench.sh): the same deterministic
//! streams the tests use.
//!
//!     lifeboat-gen stream BYTES SEED OUT    half random, half SQL-like text
//!     lifeboat-gen change OUT FRACTION SEED change a fraction in place (10 runs)
//!     lifeboat-gen clinic SCALE_MB SEED     the clinic database as SQL on stdout

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
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: lifeboat-gen stream BYTES SEED OUT | change FILE FRACTION SEED | clinic SCALE_MB SEED");
    std::process::exit(2)
}
