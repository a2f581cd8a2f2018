//! `.env` files: `KEY=value` per line. A value is written bare when it is
//! plain (letters, digits and `_-./:@,+%=`), in single quotes (taken
//! literally by every dotenv reader) when it holds no `'`, no `\` (dotenvy
//! reads `\'` as an escaped quote even there; found by fuzzing) and no
//! line break, and otherwise in double quotes with `\\`, `\"`, `\$` and `\n`
//! escaped (the dotenvy/python-dotenv rules). Files are read back with
//! dotenvy to prove the round trip.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::EnvVar;

fn plain(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./:@,+%=".contains(c))
}

/// A name every dotenv reader takes: a letter or `_` first (dotenvy
/// refuses `.` and digits there; found by fuzzing), then letters, digits,
/// `_` and `.`.
fn valid_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// One `KEY=value` line (with its newline).
pub fn line(var: &EnvVar) -> Result<String> {
    if !valid_key(&var.key) {
        return Err(Error::Refused(format!(
            "variable name {:?} cannot be written to a .env file; use --to-service",
            var.key
        )));
    }
    let v = &var.value;
    let quoted = if !v.is_empty() && plain(v) {
        v.clone()
    } else if !v.contains(['\'', '\\', '\n', '\r']) {
        format!("'{v}'")
    } else {
        let mut s = String::with_capacity(v.len() + 8);
        s.push('"');
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '$' => s.push_str("\\$"),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
        s
    };
    Ok(format!("{}={quoted}\n", var.key))
}

/// A whole file.
pub fn format(vars: &[EnvVar]) -> Result<String> {
    vars.iter().map(line).collect()
}

/// Read a file with dotenvy, in order, without touching the process
/// environment.
pub fn read(path: &Path) -> Result<Vec<(String, String)>> {
    let iter = dotenvy::from_path_iter(path)
        .map_err(|e| Error::Mismatch(format!("{} does not parse as .env: {e}", path.display())))?;
    iter.map(|r| {
        r.map_err(|e| Error::Mismatch(format!("{} does not parse as .env: {e}", path.display())))
    })
    .collect()
}

/// Fuzzing entry point (`fuzz/`, and the test below): `data` split at its
/// first NUL into a name and a value; a line written for them reads back,
/// with dotenvy, as exactly that pair. Not an API.
#[doc(hidden)]
pub fn fuzz_round_trip(data: &[u8]) {
    let (key, value) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"K"[..], data),
    };
    let var = EnvVar {
        key: String::from_utf8_lossy(key).into_owned(),
        value: String::from_utf8_lossy(value).into_owned(),
    };
    let Ok(text) = line(&var) else { return };
    let read: Vec<(String, String)> = dotenvy::from_read_iter(text.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .unwrap_or_else(|e| panic!("{text:?} does not read back: {e}"));
    assert_eq!(read, vec![(var.key.clone(), var.value.clone())], "{text:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_entry_point_holds_on_awkward_values() {
        for v in [
            &b"K\0"[..],
            b"K\0line one\nline two",
            b"K\0carriage\rreturn",
            b"K\0quote ' and \" and $X and \\",
            b"K\0\xff\xfe not utf-8",
            b"bad name\0v",
            b"no nul at all",
            // Found by libFuzzer: a name starting with `.` was written, and
            // dotenvy could not read the line back.
            b".\0]L\x01>",
            // Found by libFuzzer: a single-quoted value ending in `\`.
            b"CERT\x007---\xda\xbd\xba\xd8\0\0\0\x0e---N-iCERne\\",
            b"K\0a\\'b",
        ] {
            fuzz_round_trip(v);
        }
    }

    #[test]
    fn awkward_values_round_trip_through_dotenvy() {
        let values = [
            "",
            "plain-value_1.2:3@x",
            "with space",
            "has # hash",
            "dollar $HOME and ${PATH}",
            "single ' quote",
            "double \" quote",
            "back\\slash \\n not a newline",
            "line one\nline two\n",
            "-----BEGIN KEY-----\nMIIB\\x'\"$\n-----END KEY-----",
            "unicode é ✓ 🚑",
            "=leading equals",
            "  padded  ",
        ];
        let vars: Vec<EnvVar> = values
            .iter()
            .enumerate()
            .map(|(i, v)| EnvVar {
                key: format!("K_{i}"),
                value: v.to_string(),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.env");
        std::fs::write(&p, format(&vars).unwrap()).unwrap();
        let back = read(&p).unwrap();
        let want: Vec<(String, String)> = vars.into_iter().map(|v| (v.key, v.value)).collect();
        assert_eq!(back, want);
    }

    #[test]
    fn keys_a_dotenv_reader_cannot_take_are_refused() {
        for k in ["", "1ABC", "A B", "A=B", "A-B"] {
            let e = line(&EnvVar {
                key: k.into(),
                value: "v".into(),
            })
            .unwrap_err();
            assert!(e.to_string().contains("cannot be written"), "{e}");
        }
    }
}
