//! What a forged snapshot cannot get past. A compromised backup host holds
//! the backup key and can write any snapshot: its `_schema` item (names,
//! CREATE texts, sql_modes, charset) and its row lines. Replay runs them on
//! a staging server with a powerful account, so before anything is sent:
//!
//! - names are checked ([`check_name`]) and always quoted;
//! - sql_modes are lists of mode names ([`check_sql_mode`]), nothing else;
//! - each CREATE text is tokenized (`lexer`) and its head must be the
//!   statement the schema entry says, naming the entry itself, unqualified
//!   or qualified by the snapshot's own database (mapped to the target);
//!   a trigger's `ON` table must be a table of this snapshot;
//! - no text may name another database, or use a statement or clause that
//!   reaches beyond the target database (GRANT, SET GLOBAL, users,
//!   databases, files, plugins, replication, dynamic SQL...);
//!   see [`check_table`] and [`check_object`] for what exactly;
//! - a `;` may only end the statement, or separate statements inside a
//!   BEGIN ... END body (the server, which replay reaches without
//!   CLIENT_MULTI_STATEMENTS, refuses a second statement anyway);
//! - every row line must be what the dump's encoder writes ([`check_row`]).
//!
//! Objects' bodies (views, triggers, routines, events) run later, when
//! someone uses the object, with the privileges of its definer. The
//! stored DEFINER clause is taken out of the head ([`split_definer`]) and
//! replay writes its own, quoted, from the entry's `definer` when it keeps
//! definers ([`Rewrite`]); DEFINER anywhere else is refused. So a body that
//! names a database other than the target that exists on the target
//! server, or a system schema, is refused, as are the statements above; a
//! body reaches the server byte for byte as stored.

use std::collections::HashSet;

use crate::lexer::{ident_value, tokens, Dialect, Kind, Token};
use crate::schema::Object;

/// The longest identifier MySQL and MariaDB accept, in characters.
const MAX_NAME: usize = 64;

/// A name from the snapshot, before any use: not empty, at most 64
/// characters, no NUL (the server would cut the name there), no `/`
/// for databases (item names use it as the separator).
pub(crate) fn check_name(what: &str, name: &str, database: bool) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME {
        return Err(format!(
            "{what} name {:?} is {chars} characters long (1 to {MAX_NAME} allowed)",
            crate::schema::short(name)
        ));
    }
    if name.contains('\0') {
        return Err(format!("{what} name {name:?} contains a NUL byte"));
    }
    if database && name.contains('/') {
        return Err(format!("{what} name {name:?} contains '/'"));
    }
    Ok(())
}

/// A sql_mode from the snapshot: mode names joined by commas, as servers
/// print them. Anything else cannot be a mode and is refused before it is
/// quoted into `SET SESSION sql_mode = '...'`.
pub(crate) fn check_sql_mode(mode: &str) -> Result<(), String> {
    if mode
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b',')
    {
        Ok(())
    } else {
        Err(format!(
            "the sql_mode {:?} is not a list of mode names",
            crate::schema::short(mode)
        ))
    }
}

/// Where replay runs, for the checks.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The database the snapshot was taken from (its own name in texts).
    pub source_db: String,
    /// The database replayed into.
    pub target_db: String,
    /// Every other database the target server shows this account,
    /// lowercased (a body naming one of them is refused).
    pub other_dbs: HashSet<String>,
    /// The snapshot's tables (a trigger's `ON` must name one).
    pub tables: Vec<String>,
    /// No server to ask: the text goes into a file (`export`) that may be
    /// loaded into any database of any server. Qualifiers of the
    /// snapshot's own database are taken out of heads. Which databases the
    /// loading server has is unknown, so a body's `x.y` (a table's column,
    /// an alias's, or another database's table) is judged as replay judges
    /// it on a server with no other database; system schemas and
    /// three-part names are still refused.
    pub anywhere: bool,
}

impl Scope {
    /// The scope of an exported file: `target_db` empty (no text can name
    /// it), no other database known.
    pub(crate) fn anywhere(source_db: &str, tables: Vec<String>) -> Scope {
        Scope {
            source_db: source_db.to_string(),
            target_db: String::new(),
            other_dbs: HashSet::new(),
            tables,
            anywhere: true,
        }
    }
}

/// information_schema views that show what is beyond the target to a body
/// run with an administrator's rights (every session's statement, every
/// account's privileges): refused like SHOW PROCESSLIST and SHOW GRANTS.
const SERVER_WIDE_VIEWS: [&str; 7] = [
    "PROCESSLIST",
    "USER_PRIVILEGES",
    "SCHEMA_PRIVILEGES",
    "TABLE_PRIVILEGES",
    "COLUMN_PRIVILEGES",
    "APPLICABLE_ROLES",
    "USER_STATISTICS",
];

/// Schemas a body may never name: the grant tables and server
/// configuration. (information_schema is read-only and allowed, but for
/// [`SERVER_WIDE_VIEWS`].)
const SYSTEM_SCHEMAS: [&str; 3] = ["mysql", "performance_schema", "sys"];

/// Words that, wherever they appear as code, mean a statement or clause
/// that reaches beyond the target database, or SQL built at run time that
/// no check can see; with the reason given in the refusal.
const FORBIDDEN: [(&str, &str); 33] = [
    ("GRANT", "privileges"),
    ("REVOKE", "privileges"),
    ("IDENTIFIED", "accounts"),
    (
        "DEFINER",
        "definers (replay writes the head's DEFINER itself)",
    ),
    ("GLOBAL", "server-wide settings"),
    ("PERSIST", "server-wide settings"),
    ("PERSIST_ONLY", "server-wide settings"),
    ("OUTFILE", "writing server files"),
    ("DUMPFILE", "writing server files"),
    ("INFILE", "reading server or client files"),
    ("LOAD_FILE", "reading server files"),
    ("DIRECTORY", "files outside the data directory"),
    ("PREPARE", "dynamic SQL, which cannot be checked"),
    ("EXECUTE", "dynamic SQL, which cannot be checked"),
    ("DEALLOCATE", "dynamic SQL, which cannot be checked"),
    ("INSTALL", "plugins"),
    ("UNINSTALL", "plugins"),
    ("SONAME", "loadable functions"),
    ("SHUTDOWN", "stopping the server"),
    ("RESTART", "stopping the server"),
    ("KILL", "other sessions"),
    ("FLUSH", "server-wide state"),
    ("RESET", "server-wide state"),
    ("PURGE", "binary logs"),
    ("MASTER", "replication"),
    ("SLAVE", "replication"),
    ("REPLICA", "replication"),
    ("REPLICATION", "replication"),
    ("BINLOG", "binary logs"),
    ("INSTANCE", "server-wide state"),
    // Round 6 of the fresh-eyes attack: a body run with an administrator's
    // rights read other accounts' grants (and hashes), other databases'
    // tables and every session, or stopped its own binary logging.
    (
        "SHOW",
        "server metadata beyond the target: grants, other databases, sessions",
    ),
    ("PROCESSLIST", "other sessions"),
    ("SQL_LOG_BIN", "binary logging"),
];

/// `CREATE|DROP|ALTER|RENAME` followed by one of these is about something
/// other than this database's own objects.
const FORBIDDEN_OBJECTS: [&str; 9] = [
    "USER",
    "ROLE",
    "DATABASE",
    "SCHEMA",
    "SERVER",
    "TABLESPACE",
    "LOGFILE",
    "RESOURCE",
    "PACKAGE",
];

/// Storage engines a table may use: those that keep the table in the
/// database's own files. (FEDERATED, CONNECT, SPIDER, S3... reach other
/// servers or files.)
const ENGINES: [&str; 13] = [
    "INNODB",
    "MYISAM",
    "ARIA",
    "MEMORY",
    "HEAP",
    "CSV",
    "ARCHIVE",
    "BLACKHOLE",
    "ROCKSDB",
    "TOKUDB",
    "MRG_MYISAM",
    "MERGE",
    "SEQUENCE",
];

/// A tokenized statement.
struct Stmt<'a> {
    sql: &'a str,
    toks: Vec<Token>,
}

impl Stmt<'_> {
    fn text(&self, k: usize) -> &str {
        self.toks
            .get(k)
            .map_or("(end of text)", |t| &self.sql[t.start..t.end])
    }

    fn is_word(&self, k: usize, w: &str) -> bool {
        self.toks
            .get(k)
            .is_some_and(|t| t.kind == Kind::Word && self.text(k).eq_ignore_ascii_case(w))
    }

    fn upper(&self, k: usize) -> Option<String> {
        self.toks
            .get(k)
            .filter(|t| t.kind == Kind::Word)
            .map(|_| self.text(k).to_ascii_uppercase())
    }

    fn is_punct(&self, k: usize, c: u8) -> bool {
        self.toks.get(k).is_some_and(|t| t.kind == Kind::Punct(c))
    }

    fn is_name(&self, k: usize) -> bool {
        self.toks
            .get(k)
            .is_some_and(|t| matches!(t.kind, Kind::Word | Kind::Quoted))
    }

    fn ident(&self, k: usize) -> Option<String> {
        self.toks.get(k).and_then(|t| ident_value(self.sql, t))
    }

    fn expect(&self, k: &mut usize, w: &str) -> Result<(), String> {
        if self.is_word(*k, w) {
            *k += 1;
            Ok(())
        } else {
            Err(format!("expected {w}, found {:?}", self.text(*k)))
        }
    }

    fn eat(&self, k: &mut usize, w: &str) -> bool {
        let yes = self.is_word(*k, w);
        if yes {
            *k += 1;
        }
        yes
    }
}

/// A name in a head: `name` or `db.name`, token indexes.
struct HeadName {
    qualifier: Option<usize>,
    name: usize,
}

fn head_name(s: &Stmt<'_>, k: &mut usize) -> Result<HeadName, String> {
    if !s.is_name(*k) {
        return Err(format!("expected a name, found {:?}", s.text(*k)));
    }
    if s.is_punct(*k + 1, b'.') && s.is_name(*k + 2) {
        let n = HeadName {
            qualifier: Some(*k),
            name: *k + 2,
        };
        *k += 3;
        Ok(n)
    } else {
        let n = HeadName {
            qualifier: None,
            name: *k,
        };
        *k += 1;
        Ok(n)
    }
}

/// A change to a head: replace bytes `start..end` with `with`.
struct Edit {
    start: usize,
    end: usize,
    with: String,
}

/// Check that a qualifier, if any, is the snapshot's own database, and
/// plan to write the target's name there instead.
fn map_qualifier(
    s: &Stmt<'_>,
    n: &HeadName,
    scope: &Scope,
    edits: &mut Vec<Edit>,
) -> Result<(), String> {
    let Some(q) = n.qualifier else {
        return Ok(());
    };
    let db = s.ident(q).unwrap_or_default();
    if db != scope.source_db && db != scope.target_db {
        return Err(format!(
            "it names {} in the database `{db}`, not in the snapshot's own database `{}`",
            s.text(n.name),
            scope.source_db
        ));
    }
    edits.push(Edit {
        start: s.toks[q].start,
        end: s.toks[n.name].start,
        with: match scope.anywhere {
            true => String::new(),
            false => format!("{}.", crate::encode::ident(&scope.target_db)),
        },
    });
    Ok(())
}

fn apply(sql: &str, edits: &mut [Edit]) -> String {
    edits.sort_by_key(|e| e.start);
    let mut out = String::with_capacity(sql.len() + 64);
    let mut at = 0;
    for e in edits {
        out.push_str(&sql[at..e.start]);
        out.push_str(&e.with);
        at = e.end;
    }
    out.push_str(&sql[at..]);
    out
}

fn expect_name(s: &Stmt<'_>, n: &HeadName, want: &str) -> Result<(), String> {
    let got = s.ident(n.name).unwrap_or_default();
    if got != want {
        return Err(format!(
            "it creates {}, not the entry's own name `{want}`",
            s.text(n.name)
        ));
    }
    Ok(())
}

/// How references to other databases are judged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refs {
    /// A table: nothing may be qualified by a database but the target.
    Table,
    /// A body: nothing may name a system schema or another database that
    /// exists on the target server; three-part names only the target.
    Body { trigger: bool },
}

/// Refuse references to other databases in tokens `from..`.
fn check_refs(s: &Stmt<'_>, from: usize, scope: &Scope, refs: Refs) -> Result<(), String> {
    let n = s.toks.len();
    for k in from..n {
        if !s.is_name(k) || !s.is_punct(k + 1, b'.') {
            continue;
        }
        // Whatever follows the `.`: `db.'x'` or `db.<control byte> name` is
        // no name a server takes, but nothing that looks like a reference
        // is let through (libFuzzer found both).
        if k > 0 && (s.is_punct(k - 1, b'.') || s.is_punct(k - 1, b'@')) {
            continue; // a later part, or a variable's scope (@@session.x)
        }
        let q = s.ident(k).unwrap_or_default();
        if q == scope.target_db {
            continue;
        }
        let lower = q.to_lowercase();
        let three_part = s.is_punct(k + 3, b'.') && (s.is_name(k + 4) || s.is_punct(k + 4, b'*'));
        let refused = match refs {
            Refs::Table => true,
            Refs::Body { trigger } => {
                if trigger
                    && !three_part
                    && (lower == "new" || lower == "old")
                    && s.toks[k].kind == Kind::Word
                {
                    false
                } else {
                    SYSTEM_SCHEMAS.contains(&lower.as_str())
                        || scope.other_dbs.contains(&lower)
                        || (three_part && lower != "information_schema")
                        || (lower == "information_schema"
                            && s.ident(k + 2).is_some_and(|t| {
                                SERVER_WIDE_VIEWS.contains(&t.to_ascii_uppercase().as_str())
                            }))
                }
            }
        };
        if refused {
            return Err(format!(
                "it refers to the database `{q}` ({}{}{}): replay keeps every object inside the target database",
                s.text(k),
                s.text(k + 1),
                s.text(k + 2)
            ));
        }
    }
    Ok(())
}

/// Refuse forbidden words and statements anywhere in the text.
fn check_words(s: &Stmt<'_>, table: bool) -> Result<(), String> {
    for k in 0..s.toks.len() {
        let Some(w) = s.upper(k) else { continue };
        if k > 0 && s.is_punct(k - 1, b'.') {
            continue; // a qualified name's part, not a keyword
        }
        if w == "DEFINER" && k > 0 && s.is_word(k - 1, "SECURITY") {
            continue; // SQL SECURITY DEFINER: whose rights, not who
        }
        if (w == "SLAVE" || w == "REPLICA")
            && k > 1
            && s.is_word(k - 1, "ON")
            && s.is_word(k - 2, "DISABLE")
        {
            continue; // an event's DISABLE ON SLAVE status
        }
        if let Some((_, why)) = FORBIDDEN.iter().find(|(f, _)| *f == w) {
            return Err(format!("it uses {w} ({why})"));
        }
        let next = s.upper(k + 1).unwrap_or_default();
        match w.as_str() {
            "CREATE" | "DROP" | "ALTER" | "RENAME"
                if FORBIDDEN_OBJECTS.contains(&next.as_str()) =>
            {
                return Err(format!("it uses {w} {next}"));
            }
            "SET" if next == "PASSWORD" || (next == "DEFAULT" && s.is_word(k + 2, "ROLE")) => {
                return Err(format!("it uses SET {next} (accounts)"));
            }
            "BACKUP" if next == "STAGE" || next == "LOCK" => {
                return Err(format!("it uses BACKUP {next} (server-wide locks)"));
            }
            "SELECT" if table => {
                return Err("a table's CREATE text holds a SELECT".into());
            }
            // A table's options, in a table's text or in a body that
            // creates one (an event or routine's CREATE TABLE runs later,
            // as its definer): in a body, `connection` or `engine` may
            // also be a column's name (`SELECT engine FROM ...`).
            "CONNECTION" if table || option_value(s, k) => {
                return Err("it uses CONNECTION (a table on another server)".into());
            }
            "ENGINE" if table || option_value(s, k) => {
                let mut v = k + 1;
                if s.is_punct(v, b'=') {
                    v += 1;
                }
                let engine = s
                    .ident(v)
                    .or_else(|| string_value(s, v))
                    .unwrap_or_default();
                if !ENGINES.contains(&engine.to_ascii_uppercase().as_str()) {
                    return Err(format!(
                        "it uses the storage engine {engine:?} (replay allows {})",
                        ENGINES.join(", ")
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the word at `k` is followed by what gives a table option its
/// value (`=`, a string, or a name that does not go on as an expression:
/// `engine FROM`, `engine,`, `engine AS e` are a column's).
fn option_value(s: &Stmt<'_>, k: usize) -> bool {
    if s.is_punct(k + 1, b'=') {
        return true;
    }
    match s.toks.get(k + 1).map(|t| t.kind) {
        Some(Kind::Str) => true,
        Some(Kind::Word | Kind::Quoted) => ![
            "FROM", "AS", "AND", "OR", "IS", "IN", "LIKE", "END", "INTO", "WHERE", "THEN", "ELSE",
            "ORDER", "GROUP", "LIMIT", "NOT", "ON", "BETWEEN", "DESC", "ASC", "HAVING", "UNION",
        ]
        .iter()
        .any(|w| s.is_word(k + 1, w)),
        _ => false,
    }
}

/// A string token's text without its quotes (no escapes: an engine's name).
fn string_value(s: &Stmt<'_>, k: usize) -> Option<String> {
    let t = s.toks.get(k).filter(|t| t.kind == Kind::Str)?;
    let text = &s.sql[t.start..t.end];
    Some(text.get(1..text.len().saturating_sub(1))?.to_string())
}

/// A `;` may only be the last token.
fn check_single(s: &Stmt<'_>, from: usize) -> Result<(), String> {
    let last = s.toks.len().saturating_sub(1);
    for k in from..s.toks.len() {
        if s.is_punct(k, b';') && k != last {
            return Err(format!(
                "a ';' at byte {} ends the statement and more follows",
                s.toks[k].start
            ));
        }
    }
    Ok(())
}

/// Blocks of a stored program body, to tell the `;` inside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Begin,
    CaseStmt,
    CaseExpr,
    If,
    Loop,
    While,
    Repeat,
    For,
}

/// A body from token `from`: `;` only inside BEGIN ... END (or IF, LOOP,
/// WHILE, REPEAT, CASE, FOR blocks), or as the last token. This is not
/// what keeps a second statement out (the server does, without
/// CLIENT_MULTI_STATEMENTS); it makes the refusal lifeboat's own, with a
/// clear message.
fn check_body(s: &Stmt<'_>, from: usize) -> Result<(), String> {
    let n = s.toks.len();
    let mut stack: Vec<Block> = Vec::new();
    let mut stmt_start = true;
    let mut k = from;
    let unbalanced = |k: usize| {
        format!(
            "its body's BEGIN/END blocks do not balance (at byte {})",
            s.toks.get(k).map_or(s.sql.len(), |t| t.start)
        )
    };
    while k < n {
        if s.is_punct(k, b';') {
            if stack.is_empty() && k != n - 1 {
                return Err(format!(
                    "a ';' at byte {} ends the statement and more follows",
                    s.toks[k].start
                ));
            }
            stmt_start = true;
            k += 1;
            continue;
        }
        let Some(w) = s.upper(k) else {
            stmt_start = false;
            k += 1;
            continue;
        };
        if stmt_start && s.is_punct(k + 1, b':') && !s.is_punct(k + 2, b'=') {
            k += 2; // a label
            continue;
        }
        let in_case_expr = stack.last() == Some(&Block::CaseExpr);
        let mut next_start = false;
        match w.as_str() {
            "BEGIN" => {
                stack.push(Block::Begin);
                next_start = true;
            }
            "CASE" => stack.push(if stmt_start {
                Block::CaseStmt
            } else {
                Block::CaseExpr
            }),
            "IF" if stmt_start => stack.push(Block::If),
            "LOOP" if stmt_start => {
                stack.push(Block::Loop);
                next_start = true;
            }
            "WHILE" if stmt_start => stack.push(Block::While),
            "REPEAT" if stmt_start => {
                stack.push(Block::Repeat);
                next_start = true;
            }
            "FOR" if stmt_start => stack.push(Block::For),
            "THEN" | "ELSE" if !in_case_expr => next_start = true,
            "DO" => next_start = true,
            "END" => {
                let closes = match s.upper(k + 1).as_deref() {
                    Some("IF") => Some(Block::If),
                    Some("CASE") => Some(Block::CaseStmt),
                    Some("LOOP") => Some(Block::Loop),
                    Some("WHILE") => Some(Block::While),
                    Some("REPEAT") => Some(Block::Repeat),
                    Some("FOR") => Some(Block::For),
                    _ => None,
                };
                let top = stack.pop().ok_or_else(|| unbalanced(k))?;
                match closes {
                    Some(b) if b == top => k += 1,
                    Some(_) => return Err(unbalanced(k)),
                    None if matches!(top, Block::Begin | Block::CaseExpr) => {}
                    None => return Err(unbalanced(k)),
                }
                // `END lbl` / `END LOOP lbl`.
                if !matches!(top, Block::CaseExpr | Block::CaseStmt | Block::If)
                    && s.is_name(k + 1)
                    && !s.is_punct(k + 2, b'.')
                    && s.upper(k + 1).as_deref() != Some("END")
                {
                    k += 1;
                }
            }
            _ => {}
        }
        stmt_start = next_start;
        k += 1;
    }
    if !stack.is_empty() {
        return Err(unbalanced(n));
    }
    Ok(())
}

fn tokenize<'a>(sql: &'a str, d: Dialect) -> Result<Stmt<'a>, String> {
    Ok(Stmt {
        sql,
        toks: tokens(sql, d)?,
    })
}

/// A checked text as the stock `mysql` / `mariadb` client will read it
/// from an exported file: no backslash outside strings, identifiers and
/// comments, where the client takes it for one of its own commands
/// (`\\!` runs a shell command, `\\.` reads a file); MySQL's `\\N`
/// (NULL) included, which no server prints in a CREATE text.
pub(crate) fn check_client_text(sql: &str, d: Dialect) -> Result<(), String> {
    let s = tokenize(sql, d)?;
    // Between tokens lie spaces and comments. The server (and `lexer`)
    // takes `--` and any control byte for a comment, the client only `--`
    // and a space (blank, tab, line feed, carriage return, vertical tab,
    // form feed): after `--\x01` the client reads on, `\d` and `;`
    // included (a round-7 attack ran a GRANT as root this way).
    let mut from = 0;
    let end = std::iter::once((sql.len(), sql.len()));
    for (gap_end, next) in s.toks.iter().map(|t| (t.start, t.end)).chain(end) {
        let gap = &sql.as_bytes()[from.min(gap_end)..gap_end];
        if let Some(p) = gap.windows(3).position(|w| {
            w[0] == b'-'
                && w[1] == b'-'
                && (w[2] < 0x20 || w[2] == 0x7f)
                && !matches!(w[2], b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
        }) {
            return Err(format!(
                "it holds a comment opened by `--` and the control byte {:#04x} at byte {}, \
                 which the mysql client does not read as a comment",
                gap[p + 2],
                from + p
            ));
        }
        from = next;
    }
    match s.toks.iter().find(|t| t.kind == Kind::Punct(b'\\')) {
        Some(t) => Err(format!(
            "it holds a backslash outside any string ({:?}), which the mysql client would run \
             as one of its own commands",
            sql[t.start..].chars().take(20).collect::<String>()
        )),
        None => Ok(()),
    }
}

/// How replay rewrites an object's head once it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rewrite {
    /// The DEFINER clause to write (built and quoted by replay from the
    /// entry's `definer`); none: the replaying account becomes the definer.
    pub definer: Option<String>,
    /// `SQL SECURITY DEFINER`, written or implied, becomes `INVOKER`
    /// (views and routines).
    pub invoker: bool,
    /// An event's ENABLE / DISABLE [ON SLAVE] clause becomes this.
    pub event_status: Option<&'static str>,
}

fn replace(s: &Stmt<'_>, k: usize, with: &str) -> Edit {
    Edit {
        start: s.toks[k].start,
        end: s.toks[k].end,
        with: with.to_string(),
    }
}

fn insert(s: &Stmt<'_>, k: usize, with: &str) -> Edit {
    let at = s.toks.get(k).map_or(s.sql.len(), |t| t.start);
    Edit {
        start: at,
        end: at,
        with: with.to_string(),
    }
}

/// Words that end a head's DEFINER clause.
const AFTER_DEFINER: [&str; 7] = [
    "SQL",
    "VIEW",
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "AGGREGATE",
    "EVENT",
];

/// `sql` without the DEFINER clause of its head (`CREATE [OR REPLACE]
/// [ALGORITHM = x] DEFINER = user ...`, in any form a server prints the
/// user), and that clause's text if there was one. Nothing else changes.
pub(crate) fn split_definer(sql: &str, d: Dialect) -> Result<(String, Option<String>), String> {
    let s = tokenize(sql, d)?;
    let mut k = 0;
    if !s.eat(&mut k, "CREATE") {
        return Ok((sql.to_string(), None));
    }
    if s.eat(&mut k, "OR") {
        s.eat(&mut k, "REPLACE");
    }
    if s.is_word(k, "ALGORITHM") && s.is_punct(k + 1, b'=') {
        k += 3;
    }
    if !(s.is_word(k, "DEFINER") && s.is_punct(k + 1, b'=')) {
        return Ok((sql.to_string(), None));
    }
    let mut end = k + 2;
    while end < s.toks.len() && !AFTER_DEFINER.iter().any(|w| s.is_word(end, w)) {
        end += 1;
        if end > k + 12 {
            return Err("its DEFINER clause does not end where a definer does".into());
        }
    }
    let Some(next) = s.toks.get(end) else {
        return Err("it holds a DEFINER clause and nothing after it".into());
    };
    let (from, to) = (s.toks[k].start, next.start);
    let clause = sql[from..to].trim_end().to_string();
    Ok((format!("{}{}", &sql[..from], &sql[to..]), Some(clause)))
}

/// The account a DEFINER clause (as [`split_definer`] returns it) names,
/// as `user@host` unquoted, in any quoting the server prints it with under
/// the object's sql_mode (`` `u`@`h` ``, `"u"@"h"` under ANSI_QUOTES,
/// `'u'@'h'`); None for anything else (CURRENT_USER, a string with a
/// backslash).
pub(crate) fn definer_account(clause: &str, d: Dialect) -> Option<String> {
    let s = tokenize(clause, d).ok()?;
    let part = |k: usize| -> Option<String> {
        let t = s.toks.get(k)?;
        match t.kind {
            Kind::Word | Kind::Quoted => ident_value(clause, t),
            Kind::Str => {
                let text = &clause[t.start..t.end];
                let q = text.chars().next()?;
                let inner = &text[1..text.len() - 1];
                (!inner.contains('\\')).then(|| inner.replace(&format!("{q}{q}"), &q.to_string()))
            }
            _ => None,
        }
    };
    let mut k = 0;
    if !s.eat(&mut k, "DEFINER") || !s.is_punct(k, b'=') {
        return None;
    }
    let user = part(k + 1)?;
    let host = match s.is_punct(k + 2, b'@') {
        true => part(k + 3)?,
        false => return None,
    };
    (s.toks.len() == k + 4).then(|| format!("{user}@{host}"))
}

/// A table's CREATE text, as it will be sent: `CREATE TABLE name (` with
/// the entry's own name (qualified at most by the snapshot's database,
/// which becomes the target's), no reference to another database (a
/// FOREIGN KEY to `otherdb`.`t` is refused), no SELECT, no engine that
/// reaches other servers or files, no DATA/INDEX DIRECTORY, one statement.
pub(crate) fn check_table(
    create: &str,
    name: &str,
    d: Dialect,
    scope: &Scope,
) -> Result<String, String> {
    let s = tokenize(create, d)?;
    let mut k = 0;
    s.expect(&mut k, "CREATE")?;
    s.expect(&mut k, "TABLE")?;
    let n = head_name(&s, &mut k)?;
    expect_name(&s, &n, name)?;
    if !s.is_punct(k, b'(') {
        return Err(format!(
            "expected '(' after the table's name, found {:?}",
            s.text(k)
        ));
    }
    let mut edits = Vec::new();
    map_qualifier(&s, &n, scope, &mut edits)?;
    check_single(&s, k)?;
    check_words(&s, true)?;
    check_refs(&s, k, scope, Refs::Table)?;
    Ok(apply(create, &mut edits))
}

/// One clause of the deferred `ALTER TABLE t ADD ...` (an index or foreign
/// key taken out of the CREATE text): `ADD` and one definition, nothing
/// that a table's text may not hold, no top-level `,` (which could append
/// another alteration, a RENAME for one).
pub(crate) fn check_alter_clause(clause: &str, d: Dialect, scope: &Scope) -> Result<(), String> {
    let s = tokenize(clause, d)?;
    let mut k = 0;
    s.expect(&mut k, "ADD")?;
    check_words(&s, true)?;
    check_refs(&s, 0, scope, Refs::Table)?;
    let mut depth = 0i32;
    for t in &s.toks {
        match t.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => depth -= 1,
            Kind::Punct(b',') | Kind::Punct(b';') if depth == 0 => {
                return Err(format!(
                    "more than one definition in {:?}",
                    crate::schema::short(clause)
                ))
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced parentheses".into());
        }
    }
    Ok(())
}

/// A view, trigger, routine or event, as it will be sent (see the module
/// documentation). Heads:
/// - `CREATE [OR REPLACE] [ALGORITHM = x] [SQL SECURITY INVOKER] VIEW name`;
/// - `CREATE TRIGGER name {BEFORE|AFTER} event [OR event...] ON table
///   FOR EACH ROW [{FOLLOWS|PRECEDES} other]`, `table` one of the snapshot's;
/// - `CREATE [AGGREGATE] {PROCEDURE|FUNCTION} name (`, as the entry's kind;
/// - `CREATE EVENT name ON SCHEDULE`.
///
/// With `trust_body`, the body's references and statements are not judged
/// (the head and the one-statement rule still are).
pub(crate) fn check_object(
    obj: &Object,
    d: Dialect,
    scope: &Scope,
    trust_body: bool,
    rw: &Rewrite,
) -> Result<String, String> {
    let (text, _) = split_definer(&obj.create, d)?;
    let s = tokenize(&text, d)?;
    let mut k = 0;
    let mut edits = Vec::new();
    s.expect(&mut k, "CREATE")?;
    let mut definer_at = s.toks.get(k).map_or(text.len(), |t| t.start);
    let kind = obj.kind.to_ascii_uppercase();
    // References are judged from right after the names the head checks
    // (an event's schedule, a routine's parameters, a view's columns count).
    let refs_from: usize;
    let body = match kind.as_str() {
        "VIEW" => {
            if s.eat(&mut k, "OR") {
                s.expect(&mut k, "REPLACE")?;
            }
            if s.eat(&mut k, "ALGORITHM") {
                if !s.is_punct(k, b'=') {
                    return Err(format!(
                        "expected '=' after ALGORITHM, found {:?}",
                        s.text(k)
                    ));
                }
                k += 1;
                if !["UNDEFINED", "MERGE", "TEMPTABLE"]
                    .iter()
                    .any(|a| s.is_word(k, a))
                {
                    return Err(format!("unknown ALGORITHM {:?}", s.text(k)));
                }
                k += 1;
            }
            definer_at = s.toks.get(k).map_or(text.len(), |t| t.start);
            if s.eat(&mut k, "SQL") {
                s.expect(&mut k, "SECURITY")?;
                if s.is_word(k, "DEFINER") && rw.invoker {
                    edits.push(replace(&s, k, "INVOKER"));
                } else if !(s.is_word(k, "DEFINER") || s.is_word(k, "INVOKER")) {
                    return Err(format!(
                        "expected DEFINER or INVOKER, found {:?}",
                        s.text(k)
                    ));
                }
                k += 1;
            } else if rw.invoker {
                edits.push(insert(&s, k, "SQL SECURITY INVOKER "));
            }
            s.expect(&mut k, "VIEW")?;
            let n = head_name(&s, &mut k)?;
            expect_name(&s, &n, &obj.name)?;
            map_qualifier(&s, &n, scope, &mut edits)?;
            refs_from = k;
            k
        }
        "TRIGGER" => {
            s.expect(&mut k, "TRIGGER")?;
            let n = head_name(&s, &mut k)?;
            expect_name(&s, &n, &obj.name)?;
            map_qualifier(&s, &n, scope, &mut edits)?;
            if !(s.eat(&mut k, "BEFORE") || s.eat(&mut k, "AFTER")) {
                return Err(format!("expected BEFORE or AFTER, found {:?}", s.text(k)));
            }
            loop {
                if !["INSERT", "UPDATE", "DELETE"]
                    .iter()
                    .any(|e| s.eat(&mut k, e))
                {
                    return Err(format!(
                        "expected INSERT, UPDATE or DELETE, found {:?}",
                        s.text(k)
                    ));
                }
                if !s.eat(&mut k, "OR") {
                    break;
                }
            }
            s.expect(&mut k, "ON")?;
            let t = head_name(&s, &mut k)?;
            let table = s.ident(t.name).unwrap_or_default();
            if !scope.tables.iter().any(|x| x.eq_ignore_ascii_case(&table)) {
                return Err(format!(
                    "it is ON {}, which is no table of the snapshot's database",
                    s.text(t.name)
                ));
            }
            map_qualifier(&s, &t, scope, &mut edits).map_err(|e| format!("its ON table: {e}"))?;
            refs_from = k;
            s.expect(&mut k, "FOR")?;
            s.expect(&mut k, "EACH")?;
            s.expect(&mut k, "ROW")?;
            if s.eat(&mut k, "FOLLOWS") || s.eat(&mut k, "PRECEDES") {
                let o = head_name(&s, &mut k)?;
                if o.qualifier.is_some() {
                    return Err("its FOLLOWS/PRECEDES trigger is qualified".into());
                }
            }
            k
        }
        "PROCEDURE" | "FUNCTION" => {
            if kind == "FUNCTION" {
                s.eat(&mut k, "AGGREGATE");
            }
            s.expect(&mut k, &kind)?;
            let n = head_name(&s, &mut k)?;
            expect_name(&s, &n, &obj.name)?;
            map_qualifier(&s, &n, scope, &mut edits)?;
            if !s.is_punct(k, b'(') {
                return Err(format!(
                    "expected '(' after the name, found {:?}",
                    s.text(k)
                ));
            }
            refs_from = k;
            // The parameters, then RETURNS and characteristics; the body
            // starts at the first statement word.
            let mut depth = 0;
            while k < s.toks.len() {
                if s.is_punct(k, b'(') {
                    depth += 1;
                } else if s.is_punct(k, b')') {
                    depth -= 1;
                    if depth == 0 {
                        k += 1;
                        break;
                    }
                }
                k += 1;
            }
            let starts = [
                "BEGIN", "IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR", "RETURN", "SELECT",
                "INSERT", "UPDATE", "DELETE", "REPLACE", "SET", "CALL", "DO", "WITH",
            ];
            let mut b = k;
            while b < s.toks.len()
                && !(starts.iter().any(|w| s.is_word(b, w))
                    || (s.is_name(b) && s.is_punct(b + 1, b':')))
            {
                b += 1;
            }
            let body = if b == s.toks.len() { k } else { b };
            if rw.invoker {
                // SQL SECURITY among the characteristics, or DEFINER implied.
                match (k..body).find(|&c| s.is_word(c, "SECURITY") && s.is_word(c - 1, "SQL")) {
                    Some(c) if s.is_word(c + 1, "DEFINER") => {
                        edits.push(replace(&s, c + 1, "INVOKER"))
                    }
                    Some(_) => {}
                    None => edits.push(insert(&s, body, "SQL SECURITY INVOKER ")),
                }
            }
            body
        }
        "EVENT" => {
            s.expect(&mut k, "EVENT")?;
            let n = head_name(&s, &mut k)?;
            expect_name(&s, &n, &obj.name)?;
            map_qualifier(&s, &n, scope, &mut edits)?;
            s.expect(&mut k, "ON")?;
            refs_from = k;
            s.expect(&mut k, "SCHEDULE")?;
            let mut status = None;
            let mut comment = None;
            while k < s.toks.len() && !s.is_word(k, "DO") {
                if s.is_word(k, "ENABLE") {
                    status = Some((k, k + 1));
                } else if s.is_word(k, "DISABLE") {
                    let on = s.is_word(k + 1, "ON")
                        && (s.is_word(k + 2, "SLAVE") || s.is_word(k + 2, "REPLICA"));
                    status = Some((k, if on { k + 3 } else { k + 1 }));
                } else if s.is_word(k, "COMMENT") && comment.is_none() {
                    comment = Some(k);
                }
                k += 1;
            }
            if k == s.toks.len() {
                return Err("an event without DO".into());
            }
            if let Some(new) = rw.event_status {
                edits.push(match status {
                    Some((from, to)) => Edit {
                        start: s.toks[from].start,
                        end: s.toks[to].start,
                        with: format!("{new} "),
                    },
                    None => insert(&s, comment.unwrap_or(k), &format!("{new} ")),
                });
            }
            k + 1
        }
        other => {
            return Err(format!(
                "replay creates views, triggers, procedures, functions and events, not {other:?}"
            ))
        }
    };
    if kind == "VIEW" {
        check_single(&s, body)?;
    } else {
        check_body(&s, body)?;
    }
    if let Some(clause) = &rw.definer {
        edits.push(Edit {
            start: definer_at,
            end: definer_at,
            with: format!("{clause} "),
        });
    }
    if trust_body {
        // The head's own words still may not hold DEFINER and the like.
        check_words(
            &Stmt {
                sql: s.sql,
                toks: s.toks[..body].to_vec(),
            },
            false,
        )?;
        return Ok(apply(&text, &mut edits));
    }
    check_words(&s, false)?;
    check_refs(
        &s,
        refs_from,
        scope,
        Refs::Body {
            trigger: kind == "TRIGGER",
        },
    )?;
    Ok(apply(&text, &mut edits))
}

/// Check one row line as the dump writes it (docs/FORMAT.md): `(` values
/// `,`-separated `)`, a value being `NULL`, a number
/// (`-?digits[.digits][e[+-]digits]`), `X'` lowercase hex `'`, or `'...'`
/// with only the escapes `\0 \n \r \Z \' \\` and none of those bytes raw;
/// exactly `columns` values. One pass over the bytes; the error says what
/// and where.
pub(crate) fn check_row(line: &[u8], columns: usize) -> Result<(), String> {
    let b = line;
    let bad = |i: usize, what: &str| Err(format!("{what} at byte {i}"));
    if b.first() != Some(&b'(') {
        return bad(0, "a row line must start with '('");
    }
    let mut i = 1;
    let mut n = 0usize;
    loop {
        match b.get(i) {
            Some(b'\'') => {
                i += 1;
                loop {
                    let Some(p) = crate::encode::first_escape(&b[i..]) else {
                        return bad(b.len(), "a string is not closed");
                    };
                    i += p;
                    match b[i] {
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        b'\\' => match b.get(i + 1) {
                            Some(b'0' | b'n' | b'r' | b'Z' | b'\'' | b'\\') => i += 2,
                            _ => return bad(i, "a backslash escape the dump never writes"),
                        },
                        _ => return bad(i, "a raw control byte the dump always escapes"),
                    }
                }
            }
            Some(b'X') => {
                if b.get(i + 1) != Some(&b'\'') {
                    return bad(i, "X not followed by a quote");
                }
                let start = i + 2;
                let mut j = start;
                while j < b.len() && matches!(b[j], b'0'..=b'9' | b'a'..=b'f') {
                    j += 1;
                }
                if b.get(j) != Some(&b'\'') {
                    return bad(
                        j,
                        "a hex value holds something else than lowercase hex digits",
                    );
                }
                if (j - start) % 2 != 0 {
                    return bad(j, "a hex value has an odd number of digits");
                }
                i = j + 1;
            }
            Some(b'N') => {
                if b.get(i..i + 4) != Some(b"NULL") {
                    return bad(i, "not a value the dump writes");
                }
                i += 4;
            }
            Some(b'-' | b'0'..=b'9') => {
                let digits = |b: &[u8], i: &mut usize| {
                    let s = *i;
                    while *i < b.len() && b[*i].is_ascii_digit() {
                        *i += 1;
                    }
                    *i > s
                };
                if b[i] == b'-' {
                    i += 1;
                }
                if !digits(b, &mut i) {
                    return bad(i, "a number without digits");
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    if !digits(b, &mut i) {
                        return bad(i, "a number without digits after its point");
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E')) {
                    i += 1;
                    if matches!(b.get(i), Some(b'+' | b'-')) {
                        i += 1;
                    }
                    if !digits(b, &mut i) {
                        return bad(i, "a number without digits in its exponent");
                    }
                }
            }
            _ => return bad(i, "not a value the dump writes"),
        }
        n += 1;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b')') if i + 1 == b.len() => break,
            Some(b')') => return bad(i + 1, "something after the row's ')'"),
            _ => return bad(i, "expected ',' or ')' after a value"),
        }
    }
    if n != columns {
        return Err(format!("{n} values where the table has {columns} columns"));
    }
    Ok(())
}

/// How a schema change from the binlog changes the tables whose rows a
/// point-in-time restore applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableChange {
    None,
    Create(String),
    Drop(Vec<String>),
    /// (from, to) pairs, in order.
    Rename(Vec<(String, String)>),
}

/// What to do with a statement from the binlog's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WindowDdl {
    /// Send this text (checked; the source database's name replaced by the
    /// target's wherever it qualifies a name).
    Apply { sql: String, change: TableChange },
    /// It changes another database only.
    Elsewhere,
}

/// Kinds of object a window statement may create or drop besides tables.
const WINDOW_OBJECTS: [&str; 5] = ["VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"];

/// A schema change logged in the binlog, judged for a point-in-time
/// restore into `scope.target_db` (the session's default database being
/// the target). `default_db` is the database the statement ran in on the
/// source. Applied are, on the snapshot's own database only:
/// - `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t (...)` or `... LIKE u`,
///   with what a table's text may hold ([`check_table`]'s rules);
/// - `ALTER [ONLINE] [IGNORE] TABLE t ...` likewise, and no tablespace
///   import or discard;
/// - `DROP TABLE [IF EXISTS] t, ...`, `RENAME TABLE a TO b, ...`,
///   `TRUNCATE [TABLE] t`;
/// - `CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX i ON t (...)`, `DROP INDEX i
///   ON t`;
/// - views, triggers, routines and events, through [`check_object`] with
///   the DEFINER clause taken out (the restoring account becomes the
///   definer) and `SQL SECURITY INVOKER`; `DROP` of them.
///
/// A statement whose names all belong to another database is
/// [`WindowDdl::Elsewhere`]. Everything else is an error saying why: a
/// statement that may concern the snapshot's database and cannot be
/// applied as checked must stop the restore, not pass in silence.
pub(crate) fn check_window_ddl(
    sql: &str,
    d: Dialect,
    scope: &Scope,
    default_db: &str,
) -> Result<WindowDdl, String> {
    let s = tokenize(sql, d)?;
    let mut k = 1;
    let mut heads: Vec<HeadName> = Vec::new();
    let mut change = TableChange::None;
    let first = s.upper(0).unwrap_or_default();
    let mut object: Option<String> = None;
    match first.as_str() {
        "CREATE" => {
            if s.eat(&mut k, "OR") {
                s.expect(&mut k, "REPLACE")?;
            }
            if s.is_word(k, "TEMPORARY") {
                return Err("it creates a temporary table".into());
            }
            if s.eat(&mut k, "TABLE") {
                if s.eat(&mut k, "IF") {
                    s.expect(&mut k, "NOT")?;
                    s.expect(&mut k, "EXISTS")?;
                }
                let n = head_name(&s, &mut k)?;
                change = TableChange::Create(s.ident(n.name).unwrap_or_default());
                heads.push(n);
                if s.eat(&mut k, "LIKE") {
                    heads.push(head_name(&s, &mut k)?);
                } else if !s.is_punct(k, b'(') {
                    return Err(format!(
                        "expected '(' or LIKE after the table's name, found {:?}",
                        s.text(k)
                    ));
                }
            } else {
                while s.eat(&mut k, "ONLINE")
                    || s.eat(&mut k, "OFFLINE")
                    || s.eat(&mut k, "UNIQUE")
                    || s.eat(&mut k, "FULLTEXT")
                    || s.eat(&mut k, "SPATIAL")
                {}
                if s.eat(&mut k, "INDEX") {
                    index_head(&s, &mut k, &mut heads)?;
                } else {
                    // An object: its kind within the head's first words.
                    let (text, _) = split_definer(sql, d)?;
                    let o = tokenize(&text, d)?;
                    let at = (1..o.toks.len().min(12))
                        .find(|&i| WINDOW_OBJECTS.iter().any(|w| o.is_word(i, w)))
                        .ok_or_else(|| {
                            format!(
                                "lifeboat applies CREATE TABLE, INDEX, VIEW, TRIGGER, PROCEDURE, \
                                 FUNCTION and EVENT, not this CREATE ({:?})",
                                o.text(1)
                            )
                        })?;
                    let mut n = at + 1;
                    let name = head_name(&o, &mut n)?;
                    let qualifier = name.qualifier.and_then(|q| o.ident(q));
                    if !concerns(qualifier.as_deref(), scope, default_db)? {
                        return Ok(WindowDdl::Elsewhere);
                    }
                    object = Some(o.text(at).to_ascii_uppercase());
                    let obj = Object {
                        name: o.ident(name.name).unwrap_or_default(),
                        kind: object.clone().unwrap_or_default(),
                        create: text.clone(),
                        ..Default::default()
                    };
                    if !default_db.is_empty() && default_db != scope.source_db {
                        return Err(another_default(default_db));
                    }
                    // An event would start running, as the restoring
                    // account, the moment the restore ends: created
                    // disabled, for whoever checks it.
                    let rw = Rewrite {
                        definer: None,
                        invoker: true,
                        event_status: Some("DISABLE"),
                    };
                    let sql = check_object(&obj, d, scope, false, &rw)?;
                    return Ok(WindowDdl::Apply {
                        sql,
                        change: TableChange::None,
                    });
                }
            }
        }
        "ALTER" => {
            while s.eat(&mut k, "ONLINE") || s.eat(&mut k, "IGNORE") {}
            s.expect(&mut k, "TABLE")?;
            let n = head_name(&s, &mut k)?;
            let from = s.ident(n.name).unwrap_or_default();
            heads.push(n);
            for w in ["DISCARD", "IMPORT"] {
                if (k..s.toks.len()).any(|i| s.is_word(i, w)) {
                    return Err(format!("it uses {w} (a tablespace's files)"));
                }
            }
            // `RENAME [TO|AS] name` at the top level (not RENAME COLUMN,
            // INDEX or KEY).
            let mut depth = 0i32;
            let mut i = k;
            while i < s.toks.len() {
                if s.is_punct(i, b'(') {
                    depth += 1;
                } else if s.is_punct(i, b')') {
                    depth -= 1;
                } else if depth == 0
                    && s.is_word(i, "RENAME")
                    && !["COLUMN", "INDEX", "KEY", "CONSTRAINT"]
                        .iter()
                        .any(|w| s.is_word(i + 1, w))
                {
                    let mut j = i + 1;
                    if !(s.eat(&mut j, "TO") || s.eat(&mut j, "AS")) && s.is_punct(j, b'=') {
                        j += 1;
                    }
                    let to = head_name(&s, &mut j)?;
                    change = TableChange::Rename(vec![(
                        from.clone(),
                        s.ident(to.name).unwrap_or_default(),
                    )]);
                    heads.push(to);
                    i = j;
                    continue;
                }
                i += 1;
            }
        }
        "DROP" => {
            s.eat(&mut k, "TEMPORARY");
            if s.eat(&mut k, "TABLE") || s.eat(&mut k, "TABLES") {
                if_exists(&s, &mut k)?;
                let names = name_list(&s, &mut k, &mut heads)?;
                change = TableChange::Drop(names);
                while s.eat(&mut k, "RESTRICT") || s.eat(&mut k, "CASCADE") {}
            } else if s.eat(&mut k, "INDEX") {
                if_exists(&s, &mut k)?;
                index_head(&s, &mut k, &mut heads)?;
            } else if let Some(w) = WINDOW_OBJECTS.iter().find(|w| s.is_word(k, w)) {
                k += 1;
                if_exists(&s, &mut k)?;
                object = Some(w.to_string());
                name_list(&s, &mut k, &mut heads)?;
            } else {
                return Err(format!(
                    "lifeboat applies DROP TABLE, INDEX, VIEW, TRIGGER, PROCEDURE, FUNCTION and \
                     EVENT, not DROP {}",
                    s.text(k)
                ));
            }
        }
        "RENAME" => {
            if !(s.eat(&mut k, "TABLE") || s.eat(&mut k, "TABLES")) {
                return Err(format!(
                    "lifeboat applies RENAME TABLE, not RENAME {}",
                    s.text(k)
                ));
            }
            let mut pairs = Vec::new();
            loop {
                let a = head_name(&s, &mut k)?;
                s.expect(&mut k, "TO")?;
                let b = head_name(&s, &mut k)?;
                pairs.push((
                    s.ident(a.name).unwrap_or_default(),
                    s.ident(b.name).unwrap_or_default(),
                ));
                heads.push(a);
                heads.push(b);
                if !s.is_punct(k, b',') {
                    break;
                }
                k += 1;
            }
            change = TableChange::Rename(pairs);
        }
        "TRUNCATE" => {
            s.eat(&mut k, "TABLE");
            heads.push(head_name(&s, &mut k)?);
            if k < s.toks.len() && !(k + 1 == s.toks.len() && s.is_punct(k, b';')) {
                return Err(format!("TRUNCATE followed by {:?}", s.text(k)));
            }
        }
        _ => {
            return Err(format!(
                "lifeboat applies schema changes (CREATE, ALTER, DROP, RENAME, TRUNCATE) from \
                 the binlog, not {:?}",
                s.text(0)
            ))
        }
    }
    // Whose statement: every name in the head the snapshot's database's,
    // or every one another database's.
    let mut ours = 0;
    for n in &heads {
        let q = n.qualifier.and_then(|q| s.ident(q));
        if concerns(q.as_deref(), scope, default_db)? {
            ours += 1;
        }
    }
    if ours == 0 {
        return Ok(WindowDdl::Elsewhere);
    }
    if ours != heads.len() {
        return Err("it names tables of the snapshot's database and of another one".into());
    }
    if let Some(kind) = &object {
        // DROP of objects: the names, and nothing after them.
        if k != s.toks.len() && !(k + 1 == s.toks.len() && s.is_punct(k, b';')) {
            return Err(format!("DROP {kind} followed by {:?}", s.text(k)));
        }
    }
    // Run in another database on the source, its unqualified names (a
    // foreign key's table, a MERGE table's UNION) meant that database's
    // tables: only statements made of their heads alone are applied.
    // (Run with no database, every table it names is qualified: the server
    // refuses an unqualified one.)
    let heads_only = matches!(first.as_str(), "DROP" | "RENAME" | "TRUNCATE")
        || (first == "CREATE" && change == TableChange::None);
    if !default_db.is_empty() && default_db != scope.source_db && !heads_only {
        return Err(another_default(default_db));
    }
    check_single(&s, 0)?;
    check_words(&s, true)?;
    // Qualifiers: only the snapshot's own database, written as the target.
    let own = Scope {
        target_db: scope.source_db.clone(),
        ..scope.clone()
    };
    check_refs(&s, 0, &own, Refs::Table)?;
    let mut edits = Vec::new();
    for i in 0..s.toks.len() {
        if s.is_name(i)
            && s.is_punct(i + 1, b'.')
            && !(i > 0 && (s.is_punct(i - 1, b'.') || s.is_punct(i - 1, b'@')))
            && s.ident(i).as_deref() == Some(scope.source_db.as_str())
        {
            edits.push(replace(&s, i, &crate::encode::ident(&scope.target_db)));
        }
    }
    if object.is_some() {
        // `DROP FUNCTION f` unqualified drops a loadable function (a UDF,
        // server-wide) when the database has no stored one of that name:
        // every dropped object is named in the target database.
        let target = format!("{}.", crate::encode::ident(&scope.target_db));
        for n in heads.iter().filter(|n| n.qualifier.is_none()) {
            edits.push(insert(&s, n.name, &target));
        }
    }
    Ok(WindowDdl::Apply {
        sql: apply(sql, &mut edits),
        change,
    })
}

fn another_default(default_db: &str) -> String {
    format!(
        "it ran in database `{default_db}` on the source, where its unqualified names meant that \
         database's tables"
    )
}

/// `ALTER {DATABASE|SCHEMA} [name] option...` from the binlog's window:
/// on the snapshot's database (named, or the default one), the character
/// set, collation and comment options only, sent as `ALTER DATABASE
/// target ...`; on another, [`WindowDdl::Elsewhere`].
pub(crate) fn check_window_alter_database(
    sql: &str,
    d: Dialect,
    scope: &Scope,
    default_db: &str,
) -> Result<WindowDdl, String> {
    let s = tokenize(sql, d)?;
    let mut k = 0;
    s.expect(&mut k, "ALTER")?;
    if !(s.eat(&mut k, "DATABASE") || s.eat(&mut k, "SCHEMA")) {
        return Err(format!("expected DATABASE, found {:?}", s.text(k)));
    }
    const OPTIONS: [&str; 6] = [
        "DEFAULT",
        "CHARACTER",
        "CHARSET",
        "COLLATE",
        "COMMENT",
        "SET",
    ];
    let named = s.is_name(k) && !OPTIONS.iter().any(|w| s.is_word(k, w));
    let db = if named {
        k += 1;
        s.ident(k - 1).unwrap_or_default()
    } else {
        default_db.to_string()
    };
    if db != scope.source_db {
        return Ok(WindowDdl::Elsewhere);
    }
    let from = k;
    while k < s.toks.len() {
        if k + 1 == s.toks.len() && s.is_punct(k, b';') {
            break;
        }
        s.eat(&mut k, "DEFAULT");
        let comment = s.is_word(k, "COMMENT");
        if s.eat(&mut k, "CHARACTER") {
            s.expect(&mut k, "SET")?;
        } else if !(s.eat(&mut k, "CHARSET")
            || s.eat(&mut k, "COLLATE")
            || s.eat(&mut k, "COMMENT"))
        {
            return Err(format!(
                "ALTER DATABASE is applied with CHARACTER SET, COLLATE and COMMENT only, not {:?}",
                s.text(k)
            ));
        }
        if s.is_punct(k, b'=') {
            k += 1;
        }
        let value = s.toks.get(k).map(|t| t.kind);
        let ok = match comment {
            true => value == Some(Kind::Str),
            false => matches!(value, Some(Kind::Word | Kind::Quoted | Kind::Str)),
        };
        if !ok {
            return Err(format!(
                "an ALTER DATABASE option's value is {:?}",
                s.text(k)
            ));
        }
        k += 1;
    }
    let rest = s.toks.get(from).map_or("", |t| &sql[t.start..]);
    Ok(WindowDdl::Apply {
        sql: format!(
            "ALTER DATABASE {} {rest}",
            crate::encode::ident(&scope.target_db)
        ),
        change: TableChange::None,
    })
}

/// Whether a head name qualified by `qualifier` (or not) is the snapshot's
/// database's. An unqualified name is the default database's: the
/// statement's, on the source.
fn concerns(qualifier: Option<&str>, scope: &Scope, default_db: &str) -> Result<bool, String> {
    Ok(match qualifier {
        Some(q) => q == scope.source_db,
        None => default_db == scope.source_db,
    })
}

fn if_exists(s: &Stmt<'_>, k: &mut usize) -> Result<(), String> {
    if s.eat(k, "IF") {
        s.expect(k, "EXISTS")?;
    }
    Ok(())
}

/// `name [, name ...]`, into `heads`; the names.
fn name_list(
    s: &Stmt<'_>,
    k: &mut usize,
    heads: &mut Vec<HeadName>,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    loop {
        let n = head_name(s, k)?;
        names.push(s.ident(n.name).unwrap_or_default());
        heads.push(n);
        if !s.is_punct(*k, b',') {
            return Ok(names);
        }
        *k += 1;
    }
}

/// `[IF NOT EXISTS] index ON table`: the table into `heads`.
fn index_head(s: &Stmt<'_>, k: &mut usize, heads: &mut Vec<HeadName>) -> Result<(), String> {
    if s.eat(k, "IF") {
        s.eat(k, "NOT");
        s.expect(k, "EXISTS")?;
    }
    let index = head_name(s, k)?;
    if index.qualifier.is_some() {
        return Err("a qualified index name".into());
    }
    s.expect(k, "ON")?;
    heads.push(head_name(s, k)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            source_db: "shop".into(),
            target_db: "staging".into(),
            other_dbs: ["victim", "mysql", "shop"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            tables: vec!["orders".into(), "items".into()],
            anywhere: false,
        }
    }

    fn window(sql: &str, default_db: &str) -> Result<WindowDdl, String> {
        check_window_ddl(sql, Dialect::default(), &scope(), default_db)
    }

    fn applied(sql: &str) -> (String, TableChange) {
        match window(sql, "shop") {
            Ok(WindowDdl::Apply { sql, change }) => (sql, change),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn window_schema_changes_apply_to_the_target_only() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            applied("ALTER TABLE orders ADD COLUMN note TEXT"),
            (
                "ALTER TABLE orders ADD COLUMN note TEXT".into(),
                TableChange::None
            )
        );
        assert_eq!(
            applied("ALTER TABLE `shop`.orders ADD KEY k (a), RENAME TO orders2").0,
            "ALTER TABLE `staging`.orders ADD KEY k (a), RENAME TO orders2"
        );
        assert_eq!(
            applied("ALTER TABLE orders RENAME TO shop.orders2").1,
            TableChange::Rename(vec![("orders".into(), "orders2".into())])
        );
        assert_eq!(
            applied("ALTER TABLE orders RENAME COLUMN a TO b").1,
            TableChange::None
        );
        assert_eq!(
            applied("CREATE TABLE IF NOT EXISTS shop.refunds (id INT PRIMARY KEY, o INT, FOREIGN KEY (o) REFERENCES shop.orders (id)) ENGINE=InnoDB"),
            (
                "CREATE TABLE IF NOT EXISTS `staging`.refunds (id INT PRIMARY KEY, o INT, FOREIGN KEY (o) REFERENCES `staging`.orders (id)) ENGINE=InnoDB".into(),
                TableChange::Create("refunds".into())
            )
        );
        assert_eq!(
            applied("CREATE TABLE copy LIKE orders").1,
            TableChange::Create("copy".into())
        );
        assert_eq!(
            applied("DROP TABLE IF EXISTS `items`, shop.orders /* generated by server */").1,
            TableChange::Drop(s(&["items", "orders"]))
        );
        assert_eq!(
            applied("RENAME TABLE orders TO o_old, o_new TO orders").1,
            TableChange::Rename(vec![
                ("orders".into(), "o_old".into()),
                ("o_new".into(), "orders".into())
            ])
        );
        applied("TRUNCATE TABLE orders");
        applied("CREATE UNIQUE INDEX u ON orders (a)");
        applied("DROP INDEX u ON shop.orders");
        applied("DROP VIEW IF EXISTS v1, v2");
        // Objects: the logged DEFINER out, the body checked as replay's.
        let (sql, _) = applied(
            "CREATE DEFINER=`app`@`%` TRIGGER t1 AFTER INSERT ON orders FOR EACH ROW SET @n = @n + 1",
        );
        assert_eq!(
            sql,
            "CREATE TRIGGER t1 AFTER INSERT ON orders FOR EACH ROW SET @n = @n + 1"
        );
        let (sql, _) = applied(
            "CREATE ALGORITHM=UNDEFINED DEFINER=`app`@`%` SQL SECURITY DEFINER VIEW v AS SELECT 1",
        );
        assert!(sql.contains("SQL SECURITY INVOKER VIEW v"), "{sql}");
        // Another database's statements are not ours.
        for (sql, default_db) in [
            ("CREATE TABLE x (a INT)", "other"),
            ("CREATE TABLE other.x (a INT)", "shop"),
            ("DROP TABLE other.x", "shop"),
            ("CREATE VIEW other.v AS SELECT 1", "shop"),
            ("ALTER TABLE staging.orders ADD c INT", "shop"),
        ] {
            assert_eq!(window(sql, default_db), Ok(WindowDdl::Elsewhere), "{sql}");
        }
    }

    #[test]
    fn window_fresh_eyes_findings_stay_fixed() {
        // A body that creates a table reaching another server (the
        // FEDERATED event of the attack), here and in a snapshot's replay.
        let fed = "CREATE EVENT ev ON SCHEDULE EVERY 2 SECOND DO BEGIN CREATE TABLE IF NOT EXISTS fx2 (id INT PRIMARY KEY) ENGINE=FEDERATED CONNECTION='mysql://root@h/victim/secret'; UPDATE fx2 SET id = 1; END";
        assert!(window(fed, "shop").is_err());
        assert!(object("EVENT", "ev", fed).is_err());
        for body in [
            "CREATE PROCEDURE p() BEGIN CREATE TABLE t (a INT) ENGINE 'CONNECT'; END",
            "CREATE PROCEDURE p() BEGIN CREATE TABLE t (a INT) CONNECTION = 'x'; END",
        ] {
            assert!(object("PROCEDURE", "p", body).is_err(), "{body}");
        }
        // `engine` as a column stays allowed.
        object(
            "PROCEDURE",
            "p",
            "CREATE PROCEDURE p() BEGIN SELECT engine FROM information_schema.ENGINES WHERE engine = 'InnoDB'; END",
        )
        .unwrap();
        // DROP FUNCTION unqualified would drop a server-wide UDF.
        assert_eq!(
            applied("DROP FUNCTION IF EXISTS myudf").0,
            "DROP FUNCTION IF EXISTS `staging`.myudf"
        );
        // Another default database: names without one meant its tables.
        assert!(window("CREATE VIEW shop.v AS SELECT * FROM secret", "victim").is_err());
        // With no database selected, every table it names is qualified.
        assert!(matches!(
            window("ALTER TABLE shop.orders ADD c INT", ""),
            Ok(WindowDdl::Apply { .. })
        ));
        assert!(window(
            "CREATE TABLE shop.m (id INT) ENGINE=MERGE UNION=(mt)",
            "victim"
        )
        .is_err());
        assert!(matches!(
            window("DROP TABLE shop.orders", "victim"),
            Ok(WindowDdl::Apply { .. })
        ));
        // Events created in the window do not start running.
        let (sql, _) = applied("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SET @a = 1");
        assert!(sql.contains("DISABLE"), "{sql}");
        // ALTER DATABASE: the database's defaults follow.
        let alter = |sql: &str, default_db: &str| {
            check_window_alter_database(sql, Dialect::default(), &scope(), default_db)
        };
        assert_eq!(
            alter(
                "ALTER DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                "x"
            ),
            Ok(WindowDdl::Apply {
                sql: "ALTER DATABASE `staging` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin".into(),
                change: TableChange::None
            })
        );
        assert!(matches!(
            alter("ALTER SCHEMA DEFAULT CHARSET = latin1", "shop"),
            Ok(WindowDdl::Apply { .. })
        ));
        assert_eq!(
            alter("ALTER DATABASE other CHARSET latin1", "shop"),
            Ok(WindowDdl::Elsewhere)
        );
        assert!(alter("ALTER DATABASE shop UPGRADE DATA DIRECTORY NAME", "shop").is_err());
        assert!(alter("ALTER DATABASE shop CHARSET latin1; DROP TABLE x", "shop").is_err());
    }

    #[test]
    fn window_statements_that_reach_beyond_are_refused() {
        for sql in [
            "GRANT ALL ON *.* TO x",
            "ALTER TABLE orders ENGINE=FEDERATED CONNECTION='mysql://u@h/db/t'",
            "CREATE TABLE t (a INT) DATA DIRECTORY='/tmp'",
            "CREATE TABLE t (a INT) ENGINE=CONNECT",
            "RENAME TABLE orders TO victim.orders",
            "ALTER TABLE orders RENAME TO victim.orders",
            "ALTER TABLE orders ADD FOREIGN KEY (a) REFERENCES victim.t (id)",
            "ALTER TABLE orders DISCARD TABLESPACE",
            "ALTER TABLE orders IMPORT TABLESPACE",
            "CREATE TABLE t (a INT); GRANT ALL ON *.* TO x",
            "CREATE TEMPORARY TABLE t (a INT)",
            "CREATE TRIGGER t2 AFTER INSERT ON orders FOR EACH ROW DELETE FROM mysql.user",
            "CREATE TRIGGER t2 AFTER INSERT ON nothere FOR EACH ROW SET @a = 1",
            "CREATE VIEW v AS SELECT * FROM victim.secrets",
            "DROP TABLE orders, victim.t",
            "DROP VIEW v; DROP TABLE orders",
            "DROP DATABASE shop",
            "DROP USER x",
            "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'h')",
            "ALTER TABLE orders ADD c INT, ALGORITHM=INPLACE; SET GLOBAL read_only=1",
            "TRUNCATE victim.t, orders",
            "CREATE INDEX i ON victim.t (a)",
        ] {
            let r = window(sql, "shop");
            assert!(
                r.is_err() || (r == Ok(WindowDdl::Elsewhere) && !sql.contains("orders")),
                "{sql}: {r:?}"
            );
        }
    }

    fn obj(kind: &str, name: &str, create: &str) -> Object {
        Object {
            name: name.into(),
            kind: kind.into(),
            sql_mode: String::new(),
            create: create.into(),
            ..Default::default()
        }
    }

    fn object(kind: &str, name: &str, create: &str) -> Result<String, String> {
        check_object(
            &obj(kind, name, create),
            Dialect::default(),
            &scope(),
            false,
            &Rewrite::default(),
        )
    }

    fn table(name: &str, create: &str) -> Result<String, String> {
        check_table(create, name, Dialect::default(), &scope())
    }

    #[track_caller]
    fn refused(r: Result<String, String>, why: &str) {
        match r {
            Ok(sql) => panic!("accepted: {sql}"),
            Err(e) => assert!(e.contains(why), "{e:?} does not say {why:?}"),
        }
    }

    const ORDERS: &str = "CREATE TABLE `orders` (\n  `id` int(11) NOT NULL,\n  `note` varchar(20) DEFAULT 'a;b' COMMENT 'x.y',\n  PRIMARY KEY (`id`),\n  CONSTRAINT `fk` FOREIGN KEY (`id`) REFERENCES `items` (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 /*!50100 PARTITION BY HASH (`id`) PARTITIONS 2 */";

    #[test]
    fn honest_tables_pass_unchanged() {
        assert_eq!(table("orders", ORDERS).unwrap(), ORDERS);
        let t = "CREATE TABLE `we``ird` (`a` int) ENGINE=MyISAM;";
        assert_eq!(table("we`ird", t).unwrap(), t);
        // Qualified by the snapshot's own database: mapped to the target.
        assert_eq!(
            table("orders", "CREATE TABLE `shop`.`orders` (`id` int)").unwrap(),
            "CREATE TABLE `staging`.`orders` (`id` int)"
        );
    }

    #[test]
    fn forged_tables_are_refused() {
        refused(
            table("orders", "CREATE VIEW `orders` AS SELECT 1"),
            "expected TABLE",
        );
        refused(
            table("orders", "CREATE TABLE `other` (`id` int)"),
            "not the entry's own name",
        );
        refused(
            table("orders", "CREATE TABLE `victim`.`orders` (`id` int)"),
            "database `victim`",
        );
        refused(
            table("orders", "CREATE TABLE `orders` (`id` int, FOREIGN KEY (`id`) REFERENCES `victim`.`t` (`id`))"),
            "database `victim`",
        );
        refused(
            table("orders", "CREATE TABLE `orders` (`id` int, FOREIGN KEY (`id`) REFERENCES nowhere . t (`id`))"),
            "database `nowhere`",
        );
        refused(
            table(
                "orders",
                "CREATE TABLE `orders` (`id` int); DROP DATABASE victim",
            ),
            "';'",
        );
        refused(
            table(
                "orders",
                "CREATE TABLE `orders` (`id` int) /*!50000 ; CREATE DATABASE evil3 */",
            ),
            "';'",
        );
        refused(
            table("orders", "CREATE TABLE `orders` LIKE `victim`.`t`"),
            "expected '('",
        );
        refused(
            table("orders", "CREATE TABLE `orders` (`id` int) SELECT 1 AS id"),
            "SELECT",
        );
        refused(
            table(
                "orders",
                "CREATE TABLE `orders` (`id` int) ENGINE=FEDERATED CONNECTION='mysql://x@h/d/t'",
            ),
            "FEDERATED",
        );
        refused(
            table(
                "orders",
                "CREATE TABLE `orders` (`id` int) ENGINE = CONNECT TABLE_TYPE=CSV",
            ),
            "CONNECT",
        );
        refused(
            table(
                "orders",
                "CREATE TABLE `orders` (`id` int) DATA DIRECTORY='/etc'",
            ),
            "DIRECTORY",
        );
        refused(
            table("orders", "CREATE TEMPORARY TABLE `orders` (`id` int)"),
            "expected TABLE",
        );
        refused(
            table("orders", "CREATE TABLE `orders` (`id` int COMMENT 'x)"),
            "not closed",
        );
        refused(
            table(
                "orders",
                "CREATE TABLE `orders` (`id` int /*!99999 ' */) ; DROP DATABASE victim -- ' */)",
            ),
            "runs past",
        );
    }

    #[test]
    fn deferred_clauses_hold_one_definition() {
        let s = scope();
        let d = Dialect::default();
        assert!(check_alter_clause("ADD KEY `k` (`a`,`b`)", d, &s).is_ok());
        assert!(check_alter_clause(
            "ADD CONSTRAINT `f` FOREIGN KEY (`a`) REFERENCES `items` (`id`)",
            d,
            &s
        )
        .is_ok());
        assert!(check_alter_clause("ADD KEY `k` (`a`), RENAME TO `victim`.`x`", d, &s).is_err());
        assert!(check_alter_clause("ADD KEY `k` (`a`), RENAME TO `x`", d, &s).is_err());
        assert!(check_alter_clause("DROP KEY `k`", d, &s).is_err());
    }

    #[test]
    fn honest_objects_pass_byte_for_byte() {
        let view = "CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW `v` AS select `o`.`id` AS `id`, 'a;b' AS `s` from (`orders` `o` join `information_schema`.`TABLES`)";
        assert_eq!(object("VIEW", "v", view).unwrap(), view);
        assert_eq!(
            object("VIEW", "v", "CREATE VIEW v AS SELECT 1;").unwrap(),
            "CREATE VIEW v AS SELECT 1;"
        );
        let proc = "CREATE PROCEDURE `p`(IN n INT)\nCOMMENT 'it; works'\nBEGIN\n  DECLARE i INT DEFAULT 0;\n  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN SET i = -1; END;\n  lbl: WHILE i < n DO\n    IF i % 2 = 0 THEN INSERT INTO orders (id) VALUES (i); ELSE SET i = i + 0; END IF;\n    SET i = i + 1;\n  END WHILE lbl;\n  SELECT CASE WHEN i > 1 THEN 'x;' ELSE IF(i, 1, 2) END;\n  CASE i WHEN 1 THEN SELECT 1; ELSE BEGIN END; END CASE;\n  REPEAT SET i = i - 1; UNTIL i < 0 END REPEAT;\nEND";
        assert_eq!(object("PROCEDURE", "p", proc).unwrap(), proc);
        let func = "CREATE FUNCTION `f`(x INT) RETURNS int(11)\n    DETERMINISTIC\nRETURN x + 1";
        assert_eq!(object("FUNCTION", "f", func).unwrap(), func);
        let trig = "CREATE TRIGGER `t_bi` BEFORE INSERT ON `orders` FOR EACH ROW BEGIN\n  IF NEW.id < 0 THEN SET NEW.id = 0; END IF;\n  SET NEW.note = CONCAT(OLD.note, ';');\nEND";
        assert_eq!(object("TRIGGER", "t_bi", trig).unwrap(), trig);
        let trig1 = "CREATE TRIGGER tr AFTER UPDATE ON shop.orders FOR EACH ROW IF NEW.id > 1 THEN SET @x = 1; END IF";
        assert_eq!(
            object("TRIGGER", "tr", trig1).unwrap(),
            "CREATE TRIGGER tr AFTER UPDATE ON `staging`.orders FOR EACH ROW IF NEW.id > 1 THEN SET @x = 1; END IF"
        );
        let ev = "CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE DO DELETE FROM orders WHERE id < 0";
        assert_eq!(object("EVENT", "e", ev).unwrap(), ev);
        // An unknown qualifier (an alias, or no database on the target) passes.
        assert!(object("VIEW", "v", "CREATE VIEW v AS SELECT x.id FROM orders x").is_ok());
    }

    #[test]
    fn fuzz_findings_stay_refused() {
        // libFuzzer (sql_text): a qualifier before a string literal.
        crate::fuzzing::sql_text(
            b"CREATE PROCEDURE `v`(1!THN victim .'x;y'; E\x1e\x1e)C\t)C\tE\x1e\x1eA",
        );
        crate::fuzzing::sql_text(b"CREATE PROCEDURE `v`()EACHRE INMER NERE INSERT ON `t` FOR EACH ROW  TE8*/1reE? /*!505068*/1r3SET N = victim.\x1c `#v`= 2SGGER `v\x1d` BEFOCR555555 NEWreE.*AGCH ROWS");
        refused(
            object("PROCEDURE", "p", "CREATE PROCEDURE p() SELECT victim.'t'"),
            "victim",
        );
    }

    #[test]
    fn rewrites_touch_only_the_head_as_told() {
        let with = |kind: &str, name: &str, create: &str, rw: Rewrite| {
            check_object(
                &obj(kind, name, create),
                Dialect::default(),
                &scope(),
                false,
                &rw,
            )
        };
        let keep = |d: &str| Rewrite {
            definer: Some(d.into()),
            ..Default::default()
        };
        let view = "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1 AS `1`";
        // Kept: the clause replay built, where the server printed its own.
        assert_eq!(
            with("VIEW", "v", view, keep("DEFINER=`app`@`%`")).unwrap(),
            view.replace("`root`@`localhost`", "`app`@`%`")
        );
        // Invoker: no definer, SQL SECURITY INVOKER, written or implied.
        let inv = Rewrite {
            invoker: true,
            ..Default::default()
        };
        assert_eq!(
            with("VIEW", "v", view, inv.clone()).unwrap(),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW `v` AS select 1 AS `1`"
        );
        assert_eq!(
            with("PROCEDURE", "p", "CREATE DEFINER=`a`@`%` PROCEDURE `p`() SQL SECURITY DEFINER BEGIN SELECT 'DEFINER=x'; END", inv.clone()).unwrap(),
            "CREATE PROCEDURE `p`() SQL SECURITY INVOKER BEGIN SELECT 'DEFINER=x'; END"
        );
        assert_eq!(
            with("FUNCTION", "f", "CREATE FUNCTION `f`() RETURNS int(11)\n    DETERMINISTIC\nRETURN 1", inv).unwrap(),
            "CREATE FUNCTION `f`() RETURNS int(11)\n    DETERMINISTIC\nSQL SECURITY INVOKER RETURN 1"
        );
        // Events: the status clause replaced, or written before COMMENT / DO.
        let off = Rewrite {
            event_status: Some("DISABLE"),
            ..keep("DEFINER=`root`@`localhost`")
        };
        let ev = "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE DO DELETE FROM orders";
        assert_eq!(
            with("EVENT", "e", ev, off.clone()).unwrap(),
            ev.replace("ENABLE", "DISABLE")
        );
        let slave = ev.replace("ENABLE", "DISABLE ON SLAVE");
        assert_eq!(
            with("EVENT", "e", &slave, Rewrite::default()).unwrap(),
            slave.replace("DEFINER=`root`@`localhost` ", "")
        );
        assert_eq!(
            with("EVENT", "e", &slave, off.clone()).unwrap(),
            ev.replace("ENABLE", "DISABLE")
        );
        assert_eq!(
            with("EVENT", "e", "CREATE EVENT e ON SCHEDULE AT '2031-01-01' COMMENT 'x' DO DELETE FROM orders", off).unwrap(),
            "CREATE DEFINER=`root`@`localhost` EVENT e ON SCHEDULE AT '2031-01-01' DISABLE COMMENT 'x' DO DELETE FROM orders"
        );
        // split_definer: every form a server prints, and nothing else.
        for (sql, clause) in [
            ("CREATE DEFINER=`we``ird`@`h` FUNCTION f() RETURN 1", "DEFINER=`we``ird`@`h`"),
            ("CREATE DEFINER='app'@'10.0.%' TRIGGER t BEFORE INSERT ON orders FOR EACH ROW SET @a = 1", "DEFINER='app'@'10.0.%'"),
            ("CREATE DEFINER=CURRENT_USER() EVENT e ON SCHEDULE AT '2031-01-01' DO SET @a = 1", "DEFINER=CURRENT_USER()"),
            ("CREATE OR REPLACE ALGORITHM=MERGE DEFINER=root@localhost SQL SECURITY INVOKER VIEW v AS SELECT 1", "DEFINER=root@localhost"),
        ] {
            let (rest, got) = split_definer(sql, Dialect::default()).unwrap();
            assert_eq!(got.as_deref(), Some(clause), "{sql}");
            assert!(!rest.contains("DEFINER="), "{rest}");
        }
        assert_eq!(
            split_definer("CREATE VIEW v AS SELECT 'DEFINER=x'", Dialect::default())
                .unwrap()
                .1,
            None
        );
    }

    #[test]
    fn forged_objects_are_refused() {
        refused(
            object(
                "VIEW",
                "v",
                "CREATE VIEW v AS SELECT 1; DROP DATABASE victim",
            ),
            "';'",
        );
        refused(
            object("VIEW", "v", "CREATE VIEW v AS SELECT * FROM victim.t"),
            "database `victim`",
        );
        refused(
            object("VIEW", "v", "CREATE VIEW v AS SELECT * FROM `mysql`.`user`"),
            "database `mysql`",
        );
        refused(
            object("VIEW", "v", "CREATE VIEW v AS SELECT * FROM `sys` . `x`"),
            "database `sys`",
        );
        refused(
            object("VIEW", "v", "CREATE VIEW v AS SELECT a.b.c FROM t"),
            "database `a`",
        );
        refused(
            object("VIEW", "v", "CREATE VIEW victim.v AS SELECT 1"),
            "database `victim`",
        );
        refused(
            object("VIEW", "v", "CREATE VIEW w AS SELECT 1"),
            "not the entry's own name",
        );
        // The head's own DEFINER clause is taken out (replay writes its
        // own); anywhere else DEFINER is refused.
        assert_eq!(
            object("VIEW", "v", "CREATE DEFINER=`root`@`%` VIEW v AS SELECT 1").unwrap(),
            "CREATE VIEW v AS SELECT 1"
        );
        refused(
            object("VIEW", "v", "CREATE VIEW v AS SELECT 1 DEFINER=`root`@`%`"),
            "DEFINER",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p(IN n INT) BEGIN ALTER DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW big_orders AS SELECT 1; END",
            ),
            "DEFINER",
        );
        refused(
            object(
                "VIEW",
                "v",
                "CREATE /*!50013 DEFINER=root@localhost */ VIEW v AS SELECT 1",
            ),
            "comment",
        );
        assert!(object(
            "VIEW",
            "v",
            "CREATE SQL SECURITY DEFINER VIEW v AS SELECT 1"
        )
        .is_ok());
        refused(
            object("VIEW", "v", "CREATE SQL SECURITY ROOT VIEW v AS SELECT 1"),
            "expected DEFINER or INVOKER",
        );
        refused(
            object(
                "VIEW",
                "v",
                "CREATE VIEW v AS SELECT 1 INTO OUTFILE '/tmp/x'",
            ),
            "OUTFILE",
        );
        refused(
            object("VIEW", "v", "CREATE TABLE v (a int)"),
            "expected VIEW",
        );
        refused(
            object(
                "VIEW",
                "v",
                "CREATE VIEW v AS SELECT 1 /*!50000 ; CREATE DATABASE evil3 */",
            ),
            "';'",
        );
        refused(
            object(
                "TRIGGER",
                "tr",
                "CREATE TRIGGER tr BEFORE INSERT ON victim.t FOR EACH ROW SET @a = 1",
            ),
            "no table of the snapshot",
        );
        refused(
            object(
                "TRIGGER",
                "tr",
                "CREATE TRIGGER tr BEFORE INSERT ON victim.orders FOR EACH ROW SET @a = 1",
            ),
            "database `victim`",
        );
        refused(object("TRIGGER", "tr", "CREATE TRIGGER tr BEFORE INSERT ON orders FOR EACH ROW INSERT INTO victim.t VALUES (1)"), "database `victim`");
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() BEGIN DROP TABLE victim.t; END",
            ),
            "database `victim`",
        );
        refused(
            object(
                "TRIGGER",
                "tr",
                "CREATE TRIGGER tr BEFORE INSERT ON orders FOR EACH ROW SET NEW.victim.t = 1",
            ),
            "database `NEW`",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() BEGIN SELECT 1; END; DROP DATABASE victim",
            ),
            "';'",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END",
            ),
            "PREPARE",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() GRANT ALL ON *.* TO x",
            ),
            "GRANT",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() SET GLOBAL general_log = 1",
            ),
            "GLOBAL",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() SET @@global.general_log = 1",
            ),
            "GLOBAL",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() CREATE USER x IDENTIFIED BY 'y'",
            ),
            "USER",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() CREATE DATABASE evil",
            ),
            "CREATE DATABASE",
        );
        refused(
            object("PROCEDURE", "p", "CREATE PROCEDURE p() DROP SCHEMA victim"),
            "DROP SCHEMA",
        );
        refused(
            object(
                "PROCEDURE",
                "p",
                "CREATE PROCEDURE p() SELECT LOAD_FILE('/etc/shadow')",
            ),
            "LOAD_FILE",
        );
        for (body, word) in [
            ("SHOW GRANTS", "SHOW"),
            ("SHOW TABLES FROM victim", "SHOW"),
            ("SHOW FULL PROCESSLIST", "SHOW"),
            ("SET sql_log_bin = 0", "SQL_LOG_BIN"),
            (
                "SELECT info FROM information_schema.`PROCESSLIST`",
                "information_schema",
            ),
            (
                "SELECT * FROM `information_schema`.`user_privileges`",
                "information_schema",
            ),
        ] {
            refused(
                object("PROCEDURE", "p", &format!("CREATE PROCEDURE p() {body}")),
                word,
            );
        }
        refused(
            object("FUNCTION", "p", "CREATE PROCEDURE p() SELECT 1"),
            "expected FUNCTION",
        );
        refused(
            object("PROCEDURE", "p", "CREATE PROCEDURE p() BEGIN SELECT 1;"),
            "do not balance",
        );
        refused(
            object(
                "EVENT",
                "e",
                "CREATE EVENT e ON SCHEDULE AT CURRENT_TIMESTAMP DO DROP DATABASE victim",
            ),
            "DROP DATABASE",
        );
        refused(
            object(
                "EVENT",
                "e",
                "CREATE EVENT e ON SCHEDULE AT CURRENT_TIMESTAMP DO DELETE FROM victim.t",
            ),
            "database `victim`",
        );
        refused(
            object(
                "EVENT",
                "e",
                "CREATE EVENT e ON SCHEDULE AT (SELECT MAX(d) FROM victim.t) DO DELETE FROM orders",
            ),
            "database `victim`",
        );
        refused(
            object("PROCEDURE", "p", "CREATE PROCEDURE p(x victim.t) SELECT 1"),
            "database `victim`",
        );
        refused(
            object("PACKAGE", "k", "CREATE PACKAGE k AS END"),
            "not \"PACKAGE\"",
        );
        // The snapshot's own database exists on this server: a body naming
        // it would reach the live source, not the restored copy.
        refused(
            object("VIEW", "v", "CREATE VIEW v AS SELECT * FROM shop.orders"),
            "database `shop`",
        );
    }

    #[test]
    fn trusted_bodies_skip_only_the_body_checks() {
        let p = obj(
            "PROCEDURE",
            "p",
            "CREATE PROCEDURE p() BEGIN UPDATE victim.t SET a = 1; PREPARE s FROM @q; END",
        );
        assert!(
            check_object(&p, Dialect::default(), &scope(), false, &Rewrite::default()).is_err()
        );
        assert!(check_object(&p, Dialect::default(), &scope(), true, &Rewrite::default()).is_ok());
        for head in [
            "CREATE PROCEDURE p() DEFINER=root@localhost SELECT 1",
            "CREATE PROCEDURE victim.p() SELECT 1",
            "CREATE PROCEDURE p() BEGIN SELECT 1; END; DROP DATABASE victim",
        ] {
            let o = obj("PROCEDURE", "p", head);
            assert!(
                check_object(&o, Dialect::default(), &scope(), true, &Rewrite::default()).is_err(),
                "{head}"
            );
        }
    }

    #[test]
    fn names_and_modes() {
        assert!(check_name("a table", "orders", false).is_ok());
        assert!(check_name("a table", "a/b", false).is_ok());
        assert!(check_name("the database", "a/b", true).is_err());
        assert!(check_name("a table", "", false).is_err());
        assert!(check_name("a table", "a\0b", false).is_err());
        assert!(check_name("a table", &"é".repeat(64), false).is_ok());
        assert!(check_name("a table", &"x".repeat(65), false).is_err());
        assert!(check_sql_mode("STRICT_TRANS_TABLES,ANSI_QUOTES").is_ok());
        assert!(check_sql_mode("").is_ok());
        assert!(check_sql_mode("x', @@GLOBAL.general_log = 1, sql_mode = '").is_err());
    }

    #[test]
    fn ansi_quotes_change_what_a_double_quote_is() {
        let ansi = Dialect {
            ansi_quotes: true,
            ..Dialect::default()
        };
        let o = obj(
            "VIEW",
            "v",
            r#"CREATE VIEW "v" AS SELECT "a" FROM "victim"."t""#,
        );
        assert!(check_object(&o, ansi, &scope(), false, &Rewrite::default())
            .unwrap_err()
            .contains("victim"));
        // Without ANSI_QUOTES those are strings: no name, no reference.
        assert!(
            check_object(&o, Dialect::default(), &scope(), false, &Rewrite::default()).is_err()
        );
    }

    #[test]
    fn rows_are_what_the_dump_writes() {
        for ok in [
            &b"(1,-2.50,1e-5,3.5E+10,NULL,'a\\'b\\\\c\\0\\n\\r\\Z',X'00ff',X'','')"[..],
            b"('\xc3\xa9;)--')",
        ] {
            let n = ok.iter().filter(|b| **b == b',').count() + 1;
            check_row(ok, n).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(ok)));
        }
        for (bad, why) in [
            (&b"(1,'a'); CREATE DATABASE evil2; --"[..], "after the row"),
            (b"(1)", "1 values"),
            (b"(1,'a',3)", "3 values"),
            (b"(1,'a\\x')", "escape"),
            (b"(1,'a\rb')", "raw control"),
            (b"(1,'a)", "not closed"),
            (b"(1,X'0G')", "hex"),
            (b"(1,X'abc')", "odd"),
            (b"(1,X'AB')", "hex"),
            (b"(1,DEFAULT)", "not a value"),
            (b"(1,1+1)", "expected ','"),
            (b"(1,(SELECT 1))", "not a value"),
            (b"(-,1)", "without digits"),
            (b"(1.,1)", "after its point"),
            (b"1,1", "start with"),
            (b"(1,NULLx)", "expected ','"),
            (b"(1,@a)", "not a value"),
        ] {
            let e = check_row(bad, 2).expect_err(&String::from_utf8_lossy(bad));
            assert!(
                e.contains(why),
                "{e:?} for {}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Timing of the row check on a big table's worth of lines (run with
    /// `--ignored --nocapture`; no timed assertion).
    #[test]
    #[ignore]
    fn row_check_speed() {
        let mut line = Vec::new();
        let mut lines = Vec::new();
        for i in 0..200_000u32 {
            line.clear();
            line.extend_from_slice(
                format!("({i},'patient {i} with a longer note, it\\'s text',X'00ff10',12.50,NULL,'2024-01-01 10:00:00')").as_bytes(),
            );
            lines.push(line.clone());
        }
        let bytes: usize = lines.iter().map(Vec::len).sum();
        let t = std::time::Instant::now();
        for l in &lines {
            check_row(l, 6).expect("row");
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "check_row: {bytes} bytes in {s:.4}s = {:.0} MB/s",
            bytes as f64 / s / 1e6
        );
    }
}
