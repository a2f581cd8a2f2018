//! `.env` files: `KEY=value` per line, in the form one reader gives back
//! exactly ([`Dialect`]). For dotenvy (`rust`), a value is written bare when it is
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

/// The reader a `.env` file is written for. No one form suits every
/// reader (python-dotenv keeps a `\` that dotenvy drops; Node's dotenv has
/// no escape for `"` inside double quotes), so each file is written in the
/// form its reader gives back exactly, and a value that reader cannot
/// represent is an error naming the key (the JSON form holds any value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// `set -a; . FILE; set +a` in bash or any POSIX shell: single quotes,
    /// `'` as `'\''`. Every value but one holding NUL.
    #[default]
    Shell,
    /// python-dotenv: single quotes with `\\` and `\'` escaped; double
    /// quotes with `\r` for a carriage return (it reads files with
    /// universal newlines). It expands `${NAME}` whatever the quotes, so a
    /// value holding one cannot be written.
    Python,
    /// Node's `dotenv` package: single quotes, backticks or double quotes,
    /// whichever the value lacks (no escapes but `\n` and `\r` in double
    /// quotes), else bare.
    Node,
    /// Docker Compose `env_file` (compose-go's dotenv parser): single
    /// quotes, taken literally; values with `'` or a line break, or ending
    /// in `\\` (a quote after a backslash does not close), cannot be written.
    Compose,
    /// Rust's dotenvy: bare, single quotes, or double quotes with `\\`,
    /// `\"`, `\$` and `\n` escaped.
    Rust,
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "shell" => Dialect::Shell,
            "python" => Dialect::Python,
            "node" => Dialect::Node,
            "compose" => Dialect::Compose,
            "rust" => Dialect::Rust,
            other => {
                return Err(format!(
                    "unknown .env dialect {other:?}: use shell, python, node, compose or rust"
                ))
            }
        })
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::Shell => "shell",
            Dialect::Python => "python",
            Dialect::Node => "node",
            Dialect::Compose => "compose",
            Dialect::Rust => "rust",
        })
    }
}

/// Names bash or sh act on when set in the running shell: prompts and
/// hooks that run commands, files read by later shells, word splitting,
/// the search path, the dynamic linker. A fresh-eyes attack ran commands
/// through PROMPT_COMMAND, PS1 and BASH_ENV in a sourced file.
fn shell_acts_on(key: &str) -> bool {
    const NAMES: [&str; 17] = [
        "PROMPT_COMMAND",
        "PS0",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "PATH",
        "MAIL",
        "MAILPATH",
        "HISTFILE",
        "TMOUT",
    ];
    /// Variables bash keeps its own value in (a round-6 attack: `RANDOM`
    /// and `SECONDS` do not read back; `UID` cannot be set).
    const OWN: [&str; 18] = [
        "RANDOM",
        "SRANDOM",
        "SECONDS",
        "EPOCHSECONDS",
        "EPOCHREALTIME",
        "LINENO",
        "UID",
        "EUID",
        "PPID",
        "GROUPS",
        "FUNCNAME",
        "HISTCMD",
        "PIPESTATUS",
        "OPTIND",
        "OPTARG",
        "SHLVL",
        "PWD",
        "OLDPWD",
    ];
    NAMES.contains(&key)
        || OWN.contains(&key)
        || key.starts_with("BASH")
        || key.starts_with("LD_")
        // `A.B=x` is no assignment to bash: it would run as a command.
        || key.contains('.')
}

/// One `KEY=value` line (with its newline), for dotenvy.
pub fn line(var: &EnvVar) -> Result<String> {
    line_for(var, Dialect::Rust)
}

/// One `KEY=value` line (with its newline) that `dialect`'s reader reads
/// back as exactly this variable.
pub fn line_for(var: &EnvVar, dialect: Dialect) -> Result<String> {
    if !valid_key(&var.key) {
        return Err(Error::Refused(format!(
            "variable name {:?} cannot be written to a .env file; use --to-service",
            var.key
        )));
    }
    if dialect == Dialect::Node && var.key == "__proto__" {
        return Err(Error::Refused(
            "__proto__ is not kept by Node's dotenv (it names the object's prototype); write \
             this set with --to-env-json"
                .into(),
        ));
    }
    if dialect == Dialect::Shell && shell_acts_on(&var.key) {
        return Err(Error::Refused(format!(
            "{} cannot be set by `. FILE` in bash as it is: the shell acts on it or keeps \
             its own value, or the line would run as a command; write this set with \
             --to-env-json, or another --env-dialect",
            var.key
        )));
    }
    let v = &var.value;
    let quoted = match dialect {
        Dialect::Rust => rust_value(v),
        Dialect::Shell if !v.contains('\0') => Some(format!("'{}'", v.replace('\'', "'\\''"))),
        Dialect::Python => python_value(v),
        Dialect::Node => node_value(v),
        Dialect::Compose if !v.contains(['\'', '\n', '\r', '\0']) && !v.ends_with('\\') => {
            Some(format!("'{v}'"))
        }
        _ => None,
    }
    .ok_or_else(|| {
        Error::Invalid(format!(
            "the value of {} cannot be written so that the {dialect} reader gives it back \
             exactly; write this set with --to-env-json (or another --env-dialect)",
            var.key
        ))
    })?;
    Ok(format!("{}={quoted}\n", var.key))
}

fn rust_value(v: &str) -> Option<String> {
    Some(if !v.is_empty() && plain(v) {
        v.to_string()
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
    })
}

fn python_value(v: &str) -> Option<String> {
    // python-dotenv expands `${NAME}` in every value, quoted or not (its
    // default, `interpolate=True`), and nothing escapes it (measured with
    // python-dotenv 1.2.2).
    let expands = v.find("${").is_some_and(|i| v[i..].contains('}'));
    if v.contains('\0') || expands {
        return None;
    }
    // A `\` just before the closing quote reads as an escaped quote when a
    // later line holds that quote (measured): such a value goes bare, if
    // it can.
    if v.ends_with('\\') {
        let bare = !v.contains(['\r', '\n'])
            && v.trim() == v
            && !v.starts_with(['\'', '"'])
            && !v.contains('#')
            && !v.is_empty();
        return bare.then(|| v.to_string());
    }
    if !v.contains('\r') {
        return Some(format!(
            "'{}'",
            v.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('"');
    Some(s)
}

fn node_value(v: &str) -> Option<String> {
    if v.contains('\0') {
        return None;
    }
    // Quoted forms keep everything but their quote; a `\` just before the
    // closing quote would read as an escape of it.
    let ends_free = !v.ends_with('\\');
    if !v.contains('\r') && ends_free {
        for q in ['\'', '`'] {
            if !v.contains(q) {
                return Some(format!("{q}{v}{q}"));
            }
        }
    }
    if !v.contains('"') && !v.contains("\\n") && !v.contains("\\r") && ends_free {
        return Some(format!(
            "\"{}\"",
            v.replace('\n', "\\n").replace('\r', "\\r")
        ));
    }
    let bare = !v.is_empty()
        && !v.contains(['#', '\n', '\r'])
        && v.trim() == v
        && !v.starts_with(['\'', '"', '`']);
    bare.then(|| v.to_string())
}

/// A whole file, for dotenvy.
pub fn format(vars: &[EnvVar]) -> Result<String> {
    format_for(vars, Dialect::Rust)
}

/// A whole file for `dialect`.
pub fn format_for(vars: &[EnvVar], dialect: Dialect) -> Result<String> {
    vars.iter().map(|v| line_for(v, dialect)).collect()
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

/// Read back a file written by [`format_for`]: dotenvy for `rust`; for the
/// others, the forms this module writes, decoded by that reader's rules
/// (the tests check them against the real readers). Anything else is an
/// error.
pub fn read_for(path: &Path, dialect: Dialect) -> Result<Vec<(String, String)>> {
    if dialect == Dialect::Rust {
        return read(path);
    }
    let bad = |why: &str| Error::Mismatch(format!("{} does not read back: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| bad("a line without '='"))?;
        let (value, after) = decode(after, dialect).ok_or_else(|| bad("a value not as written"))?;
        rest = after
            .strip_prefix('\n')
            .ok_or_else(|| bad("a line that goes on"))?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The text up to `q`, and what follows it.
fn until(s: &str, q: char) -> Option<(String, &str)> {
    s.find(q).map(|i| (s[..i].to_string(), &s[i + 1..]))
}

/// One value as [`line_for`] writes it for `d`, and the text after it.
fn decode(s: &str, d: Dialect) -> Option<(String, &str)> {
    let first = s.chars().next()?;
    match (d, first) {
        (Dialect::Shell, '\'') => {
            let mut v = String::new();
            let mut rest = s;
            while let Some(r) = rest.strip_prefix('\'') {
                let (part, after) = until(r, '\'')?;
                v.push_str(&part);
                match after.strip_prefix("\\'") {
                    Some(a) => {
                        v.push('\'');
                        rest = a;
                    }
                    None => return Some((v, after)),
                }
            }
            None
        }
        (Dialect::Python, q @ ('\'' | '"')) => {
            let mut v = String::new();
            let mut chars = s[1..].char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        let (_, e) = chars.next()?;
                        v.push(match (q, e) {
                            (_, '\\') => '\\',
                            ('\'', '\'') => '\'',
                            ('"', '"') => '"',
                            ('"', 'n') => '\n',
                            ('"', 'r') => '\r',
                            _ => return None,
                        });
                    }
                    c if c == q => return Some((v, &s[1 + i + 1..])),
                    c => v.push(c),
                }
            }
            None
        }
        (Dialect::Compose, '\'') => {
            // compose-go: the first quote not preceded by `\` closes; the
            // text between is taken literally. (Double quotes interpolate
            // and are never written for Compose.)
            let body = &s[1..];
            let end = body
                .char_indices()
                .find(|&(i, c)| c == '\'' && !body[..i].ends_with('\\'))?
                .0;
            Some((body[..end].to_string(), &body[end + 1..]))
        }
        (Dialect::Node, q @ ('\'' | '`' | '"')) => {
            let (v, after) = until(&s[1..], q)?;
            let v = match q {
                '"' => v.replace("\\n", "\n").replace("\\r", "\r"),
                _ => v,
            };
            Some((v, after))
        }
        (Dialect::Node | Dialect::Python, _) => {
            let end = s.find('\n').unwrap_or(s.len());
            Some((s[..end].to_string(), &s[end..]))
        }
        _ => None,
    }
}

/// Each set as one JSON file, which no reader can misread:
/// `{"name","id","env":{KEY: value},"secret_files":{NAME: content}}`.
pub fn json_set(
    name: &str,
    id: &str,
    vars: &[EnvVar],
    files: &[crate::model::SecretFile],
) -> String {
    let env: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|v| (v.key.clone(), v.value.clone().into()))
        .collect();
    let secret_files: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|f| (f.name.clone(), f.content.clone().into()))
        .collect();
    let mut out = serde_json::to_string_pretty(&serde_json::json!({
        "name": name,
        "id": id,
        "env": env,
        "secret_files": secret_files,
    }))
    .unwrap_or_default();
    out.push('\n');
    out
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
    fn compose_refuses_a_value_whose_closing_quote_would_be_escaped() {
        // compose-go skips a quote preceded by `\`: 'C:\dir\' would run on
        // into the next line.
        let v = EnvVar {
            key: "DIR".into(),
            value: "C:\\dir\\".into(),
        };
        let e = line_for(&v, Dialect::Compose).unwrap_err();
        assert!(e.to_string().contains("DIR") && e.to_string().contains("--to-env-json"));
        let inner = EnvVar {
            key: "DIR".into(),
            value: "C:\\dir\\x".into(),
        };
        let text = line_for(&inner, Dialect::Compose).unwrap();
        assert_eq!(text, "DIR='C:\\dir\\x'\n");
        let (back, rest) = decode("'C:\\dir\\x'\n", Dialect::Compose).unwrap();
        assert_eq!((back.as_str(), rest), ("C:\\dir\\x", "\n"));
        // The reader's own rule: an escaped quote does not close.
        let (back, _) = decode("'a\\'b'\n", Dialect::Compose).unwrap();
        assert_eq!(back, "a\\'b");
    }

    #[test]
    fn names_the_shell_acts_on_are_refused_in_the_shell_form() {
        for k in [
            "PROMPT_COMMAND",
            "PS1",
            "BASH_ENV",
            "ENV",
            "PATH",
            "IFS",
            "LD_PRELOAD",
        ] {
            let v = EnvVar {
                key: k.into(),
                value: "$(touch /tmp/x)".into(),
            };
            let e = line_for(&v, Dialect::Shell).unwrap_err();
            assert!(
                e.to_string().contains(k) && e.to_string().contains("--to-env-json"),
                "{e}"
            );
            assert!(!e.to_string().contains("touch"), "{e}");
            assert!(line_for(&v, Dialect::Rust).is_ok());
        }
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
