//! A tokenizer of MySQL and MariaDB statement text that splits it where the
//! server's own lexer does, for the checks of `guard` (statement heads,
//! database references, forbidden statements) on CREATE texts read from a
//! snapshot, which may be forged.
//!
//! What it must agree with the server on is where quoted things and comments
//! begin and end; everything else is coarse (an operator is one byte at a
//! time, a number is a run of digits and letters). It knows:
//! - `'...'` strings with backslash escapes (none under
//!   NO_BACKSLASH_ESCAPES, which only objects created under it are replayed
//!   with) and doubled quotes; `"..."` likewise, or an identifier (doubled
//!   quotes, no escapes) under ANSI_QUOTES;
//!   `` `...` `` identifiers; `[...]` identifiers in MariaDB's MSSQL mode;
//! - comments: `-- ` (two dashes then a space, a control byte or the end),
//!   `#` to the end of the line, `/* ... */`;
//! - comments the server EXECUTES: `/*! ... */`, `/*!50100 ... */`,
//!   MariaDB's `/*M! ... */`, and optimizer hints `/*+ ... */`. Their content
//!   is lexed as code. The server either runs it or (a version it does not
//!   have) skips it up to the first `*/`; to keep both readings the same,
//!   no token of the content may run past that first `*/`, and the content
//!   may hold no comment of its own.
//!
//! A NUL byte, an unterminated string, identifier or comment, and the cases
//! above are errors: a CREATE text the server printed has none of them.

/// How `"`, `[` and `\\` are read: from the session's `sql_mode` as the
/// server expanded it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// `ANSI_QUOTES`: `"..."` is an identifier.
    pub ansi_quotes: bool,
    /// MariaDB's `MSSQL` mode: `[...]` is an identifier.
    pub brackets: bool,
    /// `NO_BACKSLASH_ESCAPES`: a backslash in a string is itself (an
    /// object created under it is replayed under it; rows never are).
    pub no_backslash_escapes: bool,
}

impl Dialect {
    /// From `@@SESSION.sql_mode` as the server reports it (composite modes
    /// such as ANSI are already expanded there).
    pub fn of_sql_mode(mode: &str) -> Dialect {
        let has = |m: &str| mode.split(',').any(|x| x.trim().eq_ignore_ascii_case(m));
        Dialect {
            ansi_quotes: has("ANSI_QUOTES"),
            brackets: has("MSSQL"),
            no_backslash_escapes: has("NO_BACKSLASH_ESCAPES"),
        }
    }

    /// From a sql_mode as written, when no server expands it (export):
    /// every composite mode that includes ANSI_QUOTES on either server
    /// counts as ANSI_QUOTES.
    pub fn of_unexpanded_sql_mode(mode: &str) -> Dialect {
        let has = |m: &str| mode.split(',').any(|x| x.trim().eq_ignore_ascii_case(m));
        Dialect {
            ansi_quotes: [
                "ANSI_QUOTES",
                "ANSI",
                "DB2",
                "MAXDB",
                "MSSQL",
                "ORACLE",
                "POSTGRESQL",
            ]
            .iter()
            .any(|m| has(m)),
            brackets: has("MSSQL"),
            no_backslash_escapes: has("NO_BACKSLASH_ESCAPES"),
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare word: a keyword or an unquoted identifier.
    Word,
    /// A number (a run of digits and letters that starts with a digit and
    /// is not an identifier, with its fraction and exponent).
    Number,
    /// A string literal.
    Str,
    /// A quoted identifier.
    Quoted,
    /// Any other byte: operators, parentheses, `.`, `,`, `;`, `@`, `:`.
    Punct(u8),
}

/// A token: its kind and where it lies in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// Bytes of bare identifiers: letters, digits, `_`, `$`, and every byte of
/// a multi-byte UTF-8 character (the server's identifier map for utf8mb4).
#[inline]
fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// ASCII whitespace as the server's lexer sees it.
#[inline]
fn space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Whether a run of identifier bytes starting with a digit is a number:
/// all digits, `0x`/`0b` literals, or digits with an exponent.
fn numeric(run: &[u8]) -> bool {
    if run.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if let Some(hex) = run.strip_prefix(b"0x") {
        return !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit);
    }
    if let Some(bits) = run.strip_prefix(b"0b") {
        return !bits.is_empty() && bits.iter().all(|b| *b == b'0' || *b == b'1');
    }
    match run.iter().position(|b| *b == b'e' || *b == b'E') {
        Some(e) => {
            e > 0
                && run[..e].iter().all(u8::is_ascii_digit)
                && run[e + 1..].iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// The end of a quoted token opened at `at` by `q` (the index after its
/// closing quote): `q` doubled is one `q` inside; with `escapes`, a
/// backslash takes the next byte whatever it is.
fn quoted_end(b: &[u8], at: usize, q: u8, escapes: bool) -> Option<usize> {
    let mut j = at + 1;
    while j < b.len() {
        let c = b[j];
        if escapes && c == b'\\' {
            j += 2;
            continue;
        }
        if c == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| from + p)
}

/// Split `sql` into tokens (comments dropped, executed comments' content
/// kept as code), or say what is wrong with it.
pub(crate) fn tokens(sql: &str, d: Dialect) -> Result<Vec<Token>, String> {
    let b = sql.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4 + 4);
    let mut i = 0;
    // Inside an executed comment: where its first `*/` is.
    let mut exec_end: Option<usize> = None;
    while i < b.len() {
        if exec_end == Some(i) {
            i += 2;
            exec_end = None;
            continue;
        }
        let c = b[i];
        let start = i;
        let kind = match c {
            0 => return Err(format!("a NUL byte at byte {i}")),
            c if space(c) => {
                i += 1;
                continue;
            }
            b'#' => {
                if exec_end.is_some() {
                    return Err(format!(
                        "a # comment inside an executed /*! */ comment at byte {i}"
                    ));
                }
                i = find(b, i, b"\n").map_or(b.len(), |n| n + 1);
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-')
                && b.get(i + 2).is_none_or(|n| *n <= b' ' || *n == 0x7f) =>
            {
                if exec_end.is_some() {
                    return Err(format!(
                        "a -- comment inside an executed /*! */ comment at byte {i}"
                    ));
                }
                i = find(b, i, b"\n").map_or(b.len(), |n| n + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                if exec_end.is_some() {
                    return Err(format!(
                        "a comment inside an executed /*! */ comment at byte {i}"
                    ));
                }
                let rest = &b[i + 2..];
                let marker = if rest.starts_with(b"!") || rest.starts_with(b"+") {
                    1
                } else if rest.starts_with(b"M!") {
                    2
                } else {
                    0
                };
                let content = i + 2 + marker;
                let end = find(b, content, b"*/")
                    .ok_or_else(|| format!("a comment opened at byte {i} is not closed"))?;
                if marker == 0 {
                    i = end + 2;
                    continue;
                }
                // A version number (5 or 6 digits) is not content.
                let mut k = content;
                if b[i + 2] != b'+' {
                    while k < end && k < content + 6 && b[k].is_ascii_digit() {
                        k += 1;
                    }
                }
                exec_end = Some(end);
                i = k;
                continue;
            }
            b'\'' => {
                i = quoted_end(b, i, b'\'', !d.no_backslash_escapes)
                    .ok_or_else(|| format!("a string opened at byte {start} is not closed"))?;
                Kind::Str
            }
            b'"' => {
                i = quoted_end(b, i, b'"', !d.ansi_quotes && !d.no_backslash_escapes)
                    .ok_or_else(|| format!("a \"...\" opened at byte {start} is not closed"))?;
                if d.ansi_quotes {
                    Kind::Quoted
                } else {
                    Kind::Str
                }
            }
            b'`' => {
                i = quoted_end(b, i, b'`', false)
                    .ok_or_else(|| format!("a `...` opened at byte {start} is not closed"))?;
                Kind::Quoted
            }
            b'[' if d.brackets => {
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => {
                            return Err(format!("a [...] opened at byte {start} is not closed"))
                        }
                        Some(b']') if b.get(j + 1) == Some(&b']') => j += 2,
                        Some(b']') => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                Kind::Quoted
            }
            c if ident_byte(c) => {
                while i < b.len() && ident_byte(b[i]) {
                    i += 1;
                }
                if !c.is_ascii_digit() {
                    Kind::Word
                } else if numeric(&b[start..i])
                    || (matches!(b[i - 1], b'e' | b'E')
                        && numeric(&b[start..i - 1])
                        && matches!(b.get(i), Some(b'+' | b'-')))
                {
                    number_tail(b, &mut i);
                    Kind::Number
                } else {
                    // MySQL allows identifiers that start with digits.
                    Kind::Word
                }
            }
            c => {
                i += 1;
                Kind::Punct(c)
            }
        };
        if let Some(end) = exec_end {
            if i > end {
                return Err(format!(
                    "a quoted token at byte {start} runs past the end of an executed /*! */ comment"
                ));
            }
        }
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    if exec_end.is_some() {
        return Err("an executed /*! */ comment is not closed".into());
    }
    Ok(out)
}

/// The rest of a number after its first run: an exponent sign and digits,
/// then a fraction (`.digits`) with its own exponent.
fn number_tail(b: &[u8], i: &mut usize) {
    let digits = |b: &[u8], i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    if matches!(b[*i - 1], b'e' | b'E') && matches!(b.get(*i), Some(b'+' | b'-')) {
        *i += 1;
        digits(b, i);
        return;
    }
    if b.get(*i) == Some(&b'.') && b.get(*i + 1).is_some_and(u8::is_ascii_digit) {
        *i += 1;
        digits(b, i);
        if matches!(b.get(*i), Some(b'e' | b'E')) {
            let save = *i;
            *i += 1;
            if matches!(b.get(*i), Some(b'+' | b'-')) {
                *i += 1;
            }
            if b.get(*i).is_some_and(u8::is_ascii_digit) {
                digits(b, i);
            } else {
                *i = save;
            }
        }
    }
}

/// The identifier a `Word` or `Quoted` token names (quotes removed,
/// doubled quotes undone); `None` for other tokens.
pub(crate) fn ident_value(sql: &str, t: &Token) -> Option<String> {
    let text = &sql[t.start..t.end];
    match t.kind {
        Kind::Word => Some(text.to_string()),
        Kind::Quoted => {
            let q = text.as_bytes()[0];
            let close = if q == b'[' { ']' } else { q as char };
            let inner = &text[1..text.len() - 1];
            Some(inner.replace(&format!("{close}{close}"), &close.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str, d: Dialect) -> Vec<(Kind, String)> {
        tokens(sql, d)
            .unwrap_or_else(|e| panic!("{e}: {sql}"))
            .iter()
            .map(|t| (t.kind, sql[t.start..t.end].to_string()))
            .collect()
    }

    fn texts(sql: &str) -> Vec<String> {
        kinds(sql, Dialect::default())
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    #[test]
    fn quoting_hides_semicolons_and_quotes() {
        assert_eq!(
            texts(r#"SELECT 'a;b', 'it''s', 'x\'y;', "q\";", `we``ird;`"#),
            [
                "SELECT",
                "'a;b'",
                ",",
                "'it''s'",
                ",",
                r"'x\'y;'",
                ",",
                r#""q\";""#,
                ",",
                "`we``ird;`"
            ]
        );
        // Under ANSI_QUOTES "..." is an identifier: no backslash escapes.
        let ansi = Dialect {
            ansi_quotes: true,
            ..Dialect::default()
        };
        let k = kinds(r#""a\" ; "b""#, ansi);
        assert_eq!(k[0], (Kind::Quoted, r#""a\""#.into()));
        assert_eq!(k[1], (Kind::Punct(b';'), ";".into()));
        let ms = Dialect {
            ansi_quotes: true,
            brackets: true,
            ..Dialect::default()
        };
        assert_eq!(kinds("[a]]b;]", ms), [(Kind::Quoted, "[a]]b;]".into())]);
        assert_eq!(
            ident_value("[a]]b;]", &tokens("[a]]b;]", ms).unwrap()[0]).as_deref(),
            Some("a]b;")
        );
        assert_eq!(
            ident_value(
                "`we``ird`",
                &tokens("`we``ird`", Dialect::default()).unwrap()[0]
            )
            .as_deref(),
            Some("we`ird")
        );
    }

    #[test]
    fn comments_are_dropped_and_executed_comments_are_code() {
        assert_eq!(
            texts("a -- x ; y\nb # z;\nc /* ; */ d --\te\nf--g"),
            ["a", "b", "c", "d", "f", "-", "-", "g"]
        );
        assert_eq!(
            texts("CREATE /*!50001 VIEW */ v /*M!100100 ; */ /*+ BKA(t) */ /*!*/x"),
            ["CREATE", "VIEW", "v", ";", "BKA", "(", "t", ")", "x"]
        );
        assert_eq!(
            texts("/*!50000 ; CREATE DATABASE evil3 */"),
            [";", "CREATE", "DATABASE", "evil3"]
        );
    }

    #[test]
    fn executed_comments_must_read_the_same_skipped_or_run() {
        let d = Dialect::default();
        // A string that runs past the first */: a server that skips the
        // comment would end it there and run what follows.
        assert!(tokens("/*!99999 ' */ DROP DATABASE x -- ' */", d).is_err());
        assert!(tokens("/*!50000 a /* b */ c */", d).is_err());
        assert!(tokens("/*!50000 a -- b */\n */", d).is_err());
        assert!(tokens("/*!50000 a # b */\n */", d).is_err());
        assert!(tokens("/*!50000 a", d).is_err());
    }

    #[test]
    fn broken_texts_are_errors() {
        let d = Dialect::default();
        for bad in ["'abc", "`abc", "\"abc", "/* x", "a\0b", r"'\'"] {
            assert!(tokens(bad, d).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_and_identifiers() {
        let k = kinds("1.5e-3 12 0x1F 1abc t1 $x é 3e5 .5", Dialect::default());
        let want = [
            (Kind::Number, "1.5e-3"),
            (Kind::Number, "12"),
            (Kind::Number, "0x1F"),
            (Kind::Word, "1abc"),
            (Kind::Word, "t1"),
            (Kind::Word, "$x"),
            (Kind::Word, "é"),
            (Kind::Number, "3e5"),
            (Kind::Punct(b'.'), "."),
            (Kind::Number, "5"),
        ];
        let want: Vec<(Kind, String)> = want.iter().map(|(k, s)| (*k, s.to_string())).collect();
        assert_eq!(k, want);
        assert_eq!(
            Dialect::of_sql_mode("PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,MSSQL"),
            Dialect {
                ansi_quotes: true,
                brackets: true,
                no_backslash_escapes: false,
            }
        );
        // Under NO_BACKSLASH_ESCAPES, '\\' is a whole string.
        let nbe = Dialect::of_sql_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES");
        assert!(nbe.no_backslash_escapes);
        let k = kinds("'a\\' ; 'b'", nbe);
        assert_eq!(k[0], (Kind::Str, "'a\\'".into()));
        assert_eq!(k[1], (Kind::Punct(b';'), ";".into()));
        assert_eq!(
            Dialect::of_sql_mode("STRICT_TRANS_TABLES"),
            Dialect::default()
        );
    }
}
