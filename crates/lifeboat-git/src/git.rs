//! Running the real `git`: never interactive, credentials only in the
//! child's environment (an `http.extraHeader` through `GIT_CONFIG_*`),
//! never on its command line, in a config file or in an error message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lifeboat_store::secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

/// How to run git against one remote.
#[derive(Clone, Default)]
pub(crate) struct Git {
    /// `-C` directory.
    pub dir: Option<PathBuf>,
    /// A token for HTTPS remotes.
    pub token: Option<SecretString>,
    /// `GIT_SSH_COMMAND`.
    pub ssh_command: Option<String>,
}

impl Git {
    pub fn at(&self, dir: &Path) -> Git {
        Git {
            dir: Some(dir.to_path_buf()),
            ..self.clone()
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        if let Some(d) = &self.dir {
            c.arg("-C").arg(d);
        }
        c.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null());
        if let Some(t) = &self.token {
            let basic = BASE64.encode(format!("x-access-token:{}", t.expose_secret()).as_bytes());
            c.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        if let Some(s) = &self.ssh_command {
            c.env("GIT_SSH_COMMAND", s);
        }
        c
    }

    fn output(&self, args: &[&str]) -> Result<Output> {
        self.command(args).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Invalid(
                    "git is not installed (or not on PATH); install git 2.30 or newer".into(),
                )
            } else {
                Error::io("running git", e)
            }
        })
    }

    /// Run; stdout on success, an error quoting (sanitized) stderr otherwise.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        stdout_of(args, self.output(args)?)
    }

    /// Run with `input` on standard input (e.g. `update-ref --stdin`).
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Result<String> {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("running git", e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| Error::io("writing to git", e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("waiting for git", e))?;
        stdout_of(args, out)
    }

    /// Run; whether it succeeded, and its stderr.
    pub fn try_run(&self, args: &[&str]) -> Result<(bool, String)> {
        let out = self.output(args)?;
        Ok((
            out.status.success(),
            redact_url(String::from_utf8_lossy(&out.stderr).trim()),
        ))
    }

    /// Branches and tags: refname -> object id.
    pub fn refs(&self) -> Result<BTreeMap<String, String>> {
        let out = self.run(&[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ])?;
        Ok(parse_refs(&out))
    }
}

/// A finished git's stdout, or an error naming the command (its first two
/// words) and quoting its stderr, URLs without credentials.
fn stdout_of(args: &[&str], out: Output) -> Result<String> {
    if !out.status.success() {
        return Err(Error::Git {
            command: args
                .iter()
                .take(2)
                .map(|a| redact_url(a))
                .collect::<Vec<_>>()
                .join(" "),
            stderr: redact_url(String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `OID REFNAME` lines (for-each-ref, ls-remote) into a map.
pub(crate) fn parse_refs(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (oid, name) = l.split_once([' ', '\t'])?;
            let name = name.trim();
            (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
                .then(|| (name.to_string(), oid.to_string()))
        })
        .filter(|(n, _)| !n.ends_with("^{}"))
        .collect()
}

/// A URL without its `user:password@` part, for messages and records.
pub fn redact_url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_cut_out_of_urls() {
        assert_eq!(
            redact_url(
                "fatal: unable to access 'https://x-access-token:ghp_abc@github.com/o/r.git/': 403"
            ),
            "fatal: unable to access 'https://***@github.com/o/r.git/': 403"
        );
        assert_eq!(
            redact_url("https://github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(redact_url("/srv/git/r.git"), "/srv/git/r.git");
    }

    #[test]
    fn ref_lines_keep_branches_and_tags_only() {
        let m = parse_refs("a1 refs/heads/main\nb2\trefs/tags/v1\nc3 refs/pull/1/head\nd4 HEAD\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["refs/tags/v1"], "b2");
    }
}
