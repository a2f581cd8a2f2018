//! Reading some columns of one table, from a snapshot or from a live
//! database, as text: for checks that look into the data (the cross-check
//! of document rows against stored objects) without replaying it.

use futures_util::TryStreamExt;
use lifeboat_store::{FullAccess, Index, ManifestItem, Repository};
use sqlx::Row;

use crate::connect::MysqlOptions;
use crate::encode::{ident, Lines};
use crate::error::{Context as _, Error, Result};
use crate::replay::load_schema;

/// A value as text (`None` for NULL; binary values as their bytes, lossily).
pub type Value = Option<String>;

/// Parse one row line, `(v1,v2,...)`, as [`crate::encode::push_row`] writes it.
pub fn parse_row(line: &[u8]) -> std::result::Result<Vec<Option<Vec<u8>>>, String> {
    let inner = line
        .strip_prefix(b"(")
        .and_then(|l| l.strip_suffix(b")"))
        .ok_or("a row line must be `(...)`")?;
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let rest = &inner[i..];
        if rest.starts_with(b"NULL") {
            out.push(None);
            i += 4;
        } else if rest.starts_with(b"X'") {
            let end = rest[2..]
                .iter()
                .position(|b| *b == b'\'')
                .ok_or("unterminated X''")?;
            out.push(Some(
                hex::decode(&rest[2..2 + end]).map_err(|e| e.to_string())?,
            ));
            i += end + 3;
        } else if rest.starts_with(b"'") {
            let mut v = Vec::new();
            let mut j = 1;
            loop {
                match rest.get(j) {
                    None => return Err("unterminated string".into()),
                    Some(b'\'') => break,
                    Some(b'\\') => {
                        v.push(match rest.get(j + 1) {
                            Some(b'0') => 0,
                            Some(b'n') => b'\n',
                            Some(b'r') => b'\r',
                            Some(b'Z') => 0x1a,
                            Some(c) => *c,
                            None => return Err("dangling escape".into()),
                        });
                        j += 2;
                    }
                    Some(c) => {
                        v.push(*c);
                        j += 1;
                    }
                }
            }
            out.push(Some(v));
            i += j + 1;
        } else {
            let end = rest.iter().position(|b| *b == b',').unwrap_or(rest.len());
            if end == 0 {
                return Err("empty value".into());
            }
            out.push(Some(rest[..end].to_vec()));
            i += end;
        }
        match inner.get(i) {
            None => return Ok(out),
            Some(b',') => i += 1,
            Some(_) => return Err(format!("unexpected byte at {i}")),
        }
    }
}

fn text(v: Option<Vec<u8>>) -> Value {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Stream `columns` of `table` from the MySQL backup in a snapshot's items.
pub fn snapshot_rows(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    table: &str,
    columns: &[&str],
    each: &mut dyn FnMut(Vec<Value>),
) -> Result<()> {
    let (schema, tables) = load_schema(repo, index, items)?;
    let t = schema
        .tables
        .iter()
        .find(|t| t.name == table)
        .ok_or_else(|| Error::Invalid(format!("the MySQL backup has no table {table}")))?;
    let pos: Vec<usize> = columns
        .iter()
        .map(|c| {
            t.columns
                .iter()
                .position(|col| col.name.eq_ignore_ascii_case(c))
                .ok_or_else(|| Error::Invalid(format!("table {table} has no column {c}")))
        })
        .collect::<Result<_>>()?;
    let item = tables
        .get(&t.item_name(&schema.database))
        .ok_or_else(|| Error::Damaged(format!("the snapshot lacks the rows of {table}")))?;
    let mut bad = None;
    let mut lines = Lines::new(|line: &[u8]| {
        match parse_row(line) {
            Ok(mut row) => each(
                pos.iter()
                    .map(|p| text(row.get_mut(*p).and_then(Option::take)))
                    .collect(),
            ),
            Err(e) => bad = Some(e),
        }
        Ok(())
    });
    repo.restore_item(index, item, &mut lines, &lifeboat_store::NoProgress)?;
    lines.finish().map_err(|e| Error::Damaged(e.to_string()))?;
    drop(lines);
    match bad {
        Some(e) => Err(Error::Damaged(format!(
            "a row of {table} is unreadable: {e}"
        ))),
        None => Ok(()),
    }
}

/// Stream `columns` of `table` from a live database.
pub fn live_rows(
    opts: &MysqlOptions,
    table: &str,
    columns: &[&str],
    each: &mut dyn FnMut(Vec<Value>),
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("starting the MySQL client: {e}")))?;
    rt.block_on(async {
        let db = opts.database()?;
        let mut conn = opts.connect(Some(&db)).await?;
        // CAST to CHAR so every value arrives as text, whatever its type.
        let cols: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST({} AS CHAR)", ident(c)))
            .collect();
        let sql = format!("SELECT {} FROM {}", cols.join(","), ident(table));
        let mut rows = sqlx::raw_sql(&sql).fetch(&mut conn);
        while let Some(row) = rows
            .try_next()
            .await
            .context(|| format!("reading {table}"))?
        {
            let mut vals = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let v: Option<Vec<u8>> = row
                    .try_get_unchecked(i)
                    .context(|| format!("reading {table}"))?;
                vals.push(text(v));
            }
            each(vals);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{push_value, Kind};

    #[test]
    fn rows_parse_back_to_what_was_encoded() {
        let vals: [(Kind, Option<&[u8]>); 6] = [
            (Kind::Number, Some(b"-12.50")),
            (Kind::Text, Some("it's a\\b,\n(ü)\0".as_bytes())),
            (Kind::Text, None),
            (Kind::Binary, Some(&[0, 255, 39, 44])),
            (Kind::Text, Some(b"")),
            (Kind::Text, Some(b"scans/a b.pdf")),
        ];
        let mut line = b"(".to_vec();
        for (i, (k, v)) in vals.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            push_value(&mut line, *k, *v);
        }
        line.push(b')');
        let row = parse_row(&line).unwrap();
        let want: Vec<Option<Vec<u8>>> = vals.iter().map(|(_, v)| v.map(|b| b.to_vec())).collect();
        assert_eq!(row, want);
        assert!(parse_row(b"(1,'x").is_err());
        assert!(parse_row(b"1,2").is_err());
    }
}
