//! Accounts (issue 17, item 2): the application's account is in every
//! snapshot; after its server is thrown away, `restore --with-users` into a
//! fresh server lets it log in with its old password and do exactly what
//! it could before, no more (its server-wide grant is listed, not given).

use lifeboat_testkit::mariadb::TlsServer;
use lifeboat_testkit::Lifeboat;

fn config(lb: &Lifeboat, name: &str, source: &TlsServer, staging: Option<&TlsServer>) -> String {
    let path = lb.path(name);
    let mut text = format!(
        "[repository]\nurl = \"{}\"\nbackup_key_file = \"{}\"\n[mysql]\nurl = \"mysql://root@127.0.0.1:{}/clinic\"\nca_file = \"{}\"\n",
        lb.repo,
        lb.backup_key.display(),
        source.port,
        source.ca.display()
    );
    if let Some(s) = staging {
        text.push_str(&format!(
            "[staging]\nmysql_url = \"mysql://root@127.0.0.1:{}/clinic\"\nmysql_ca_file = \"{}\"\n",
            s.port,
            s.ca.display()
        ));
    }
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

/// A fresh server without the anonymous accounts mariadb-install-db
/// creates (`''@'localhost'` would match a TCP login before `app@%`).
fn server() -> TlsServer {
    let s = TlsServer::start();
    let hosts = s
        .sql("SELECT Host FROM mysql.user WHERE User = ''")
        .expect("anonymous accounts");
    for h in hosts.lines().filter(|h| !h.is_empty()) {
        s.sql(&format!("DROP USER ''@'{h}'"))
            .expect("drop an anonymous account");
    }
    s
}

/// Run SQL on `server` as `user` with `password`, in clinic.
fn as_user(server: &TlsServer, user: &str, password: &str, sql: &str) -> Result<String, String> {
    server.sql_as(user, Some(password), Some("clinic"), sql)
}

fn grants(server: &TlsServer, account: &str) -> Vec<String> {
    let mut g: Vec<String> = server
        .sql(&format!("SHOW GRANTS FOR {account}"))
        .expect("grants")
        .lines()
        .map(str::to_string)
        .collect();
    g.sort();
    g
}

/// The old server's database, its application account and roles.
fn seed(old: &TlsServer) {
    old.sql(
        "CREATE DATABASE clinic; \
         CREATE TABLE clinic.patients (id INT PRIMARY KEY, name VARCHAR(40)); \
         CREATE TABLE clinic.notes (id INT PRIMARY KEY, body TEXT, author VARCHAR(40)); \
         INSERT INTO clinic.patients VALUES (1, 'Ana'), (2, 'Bo'); \
         INSERT INTO clinic.notes VALUES (1, 'first', 'dr a'); \
         CREATE DATABASE billing; \
         CREATE USER 'app'@'%' IDENTIFIED BY 'App-pass-1'; \
         GRANT SELECT, INSERT ON clinic.* TO 'app'@'%'; \
         GRANT UPDATE (body) ON clinic.notes TO 'app'@'%'; \
         GRANT SELECT ON billing.* TO 'app'@'%'; \
         GRANT PROCESS ON *.* TO 'app'@'%'; \
         CREATE ROLE reporting; \
         GRANT SELECT ON clinic.patients TO reporting; \
         GRANT reporting TO 'app'@'%'; \
         SET DEFAULT ROLE reporting FOR 'app'@'%'; \
         CREATE ROLE ops; GRANT SELECT ON clinic.notes TO ops; GRANT ops TO 'app'@'%'; \
         CREATE USER 'auditor'@'%' IDENTIFIED BY 'Aud-pass-1'; GRANT SELECT ON clinic.notes TO 'auditor'@'%';",
    )
    .expect("seed");
}

#[test]
fn the_application_account_logs_in_on_a_new_server_and_can_do_exactly_what_it_could() {
    let old = server();
    seed(&old);
    as_user(&old, "app", "App-pass-1", "SELECT COUNT(*) FROM patients").unwrap();
    let before = grants(&old, "'app'@'%'");

    let lb = Lifeboat::local();
    lb.init();
    let cfg = config(&lb, "old.toml", &old, None);
    let out = lb
        .run(&["--config", &cfg, "backup", "--source", "mysql"])
        .ok();
    assert!(
        !out.stdout.contains("App-pass-1") && !out.stdout.contains("*D8F8"),
        "{}",
        out.stdout
    );
    drop(old);

    // The server is gone; a new one, and the restore with the accounts.
    let new = server();
    // The new server already has a role named like one of the snapshot's,
    // with every right, and an `auditor` on another host: neither may be
    // touched or used (a fresh-eyes attack got ALL through such a role).
    new.sql(
        "CREATE ROLE ops; GRANT ALL PRIVILEGES ON *.* TO ops; \
         CREATE USER 'auditor'@'localhost' IDENTIFIED BY 'Local-pass-1';",
    )
    .expect("seed the new server");
    let cfg = config(&lb, "new.toml", &new, Some(&new));
    let rk = lb.restore_key.display().to_string();
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            cfg.as_str(),
            "restore",
            "latest",
            "--source",
            "mysql",
            "--with-users",
            "--restore-key-file",
            rk.as_str(),
        ];
        args.extend_from_slice(extra);
        lb.run(&args)
    };
    let out = restore(&[]).ok();
    assert!(out.stdout.contains("accounts: 2 created"), "{}", out.stdout);
    assert!(
        out.stdout.contains("left alone because they exist (role ops, auditor@% (not created: auditor@localhost exists"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("GRANT `ops` TO `app`@`%` (the role ops was on the target before this restore: not given)"),
        "{}",
        out.stdout
    );
    assert!(as_user(&new, "app", "App-pass-1", "SET ROLE ops").is_err());
    // The local auditor still logs in as itself (it has no rights on
    // clinic: 1044, not 1045 "Access denied" at login).
    let e = as_user(&new, "auditor", "Local-pass-1", "SELECT 1").unwrap_err();
    assert!(e.contains("1044"), "{e}");
    assert!(
        out.stdout
            .contains("not restored: app@%: GRANT PROCESS ON *.* TO `app`@`%` (server-wide"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("not restored: app@%: GRANT SELECT ON `billing`.* (another database)"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("*D8F8") && !out.stdout.contains("IDENTIFIED"),
        "a hash was printed: {}",
        out.stdout
    );

    // Its old password works, and it may do what it could: read, insert,
    // update the one column, use its role...
    assert_eq!(
        as_user(&new, "app", "App-pass-1", "SELECT COUNT(*) FROM patients")
            .unwrap()
            .trim(),
        "2"
    );
    as_user(&new, "app", "App-pass-1", "INSERT INTO notes VALUES (2, 'second', 'dr b'); UPDATE notes SET body = 'edited' WHERE id = 1").unwrap();
    assert_eq!(
        as_user(&new, "app", "App-pass-1", "SELECT CURRENT_ROLE()")
            .unwrap()
            .trim(),
        "reporting"
    );
    // ... and no more: another column, a delete, the server-wide grant.
    for denied in [
        "UPDATE notes SET author = 'x' WHERE id = 1",
        "DELETE FROM notes WHERE id = 1",
        "DROP TABLE notes",
    ] {
        let e = as_user(&new, "app", "App-pass-1", denied).unwrap_err();
        assert!(e.contains("denied"), "{denied}: {e}");
    }
    assert!(as_user(&new, "app", "Wrong-pass", "SELECT 1").is_err());
    // Its grants are the old ones, but for the server-wide one and the
    // other database's, which were listed instead.
    let want: Vec<String> = {
        let mut w: Vec<String> = before
            .iter()
            .filter(|g| !g.contains("`billing`") && !g.contains("`ops`"))
            .map(|g| g.replace("GRANT PROCESS ON *.*", "GRANT USAGE ON *.*"))
            .collect();
        w.sort();
        w
    };
    assert_eq!(grants(&new, "'app'@'%'"), want);

    // Again: the accounts exist now and are left alone, by name.
    let out = restore(&["--force"]).ok();
    assert!(
        out.stdout
            .contains("accounts: 0 created (0 grants), 4 left alone because they exist"),
        "{}",
        out.stdout
    );
}

/// `export --users-to`: the accounts as a file for the stock client, for
/// a database loaded under another name; the same rights, nothing more, and
/// a second load stops at the first account, before any grant.
#[test]
fn exported_accounts_load_with_the_stock_client_and_give_the_same_rights() {
    let old = server();
    seed(&old);
    let lb = Lifeboat::local();
    lb.init();
    let cfg = config(&lb, "old.toml", &old, None);
    lb.run(&["--config", &cfg, "backup", "--source", "mysql"])
        .ok();
    drop(old);

    let rk = lb.restore_key.display().to_string();
    let data = lb.path("clinic.sql").display().to_string();
    let users = lb.path("users.sql").display().to_string();
    let out = lb
        .run(&[
            "export",
            "latest",
            "--source",
            "mysql",
            "--to",
            &data,
            "--users-to",
            &users,
            "--grants-on",
            "clinic2",
            "--restore-key-file",
            &rk,
        ])
        .ok();
    let printed = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !printed.contains("*D8F8") && !printed.contains("IDENTIFIED"),
        "{printed}"
    );
    assert!(
        printed.contains("skipped: app@%: GRANT PROCESS ON *.* TO `app`@`%` (server-wide"),
        "{printed}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&users).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the accounts file holds password hashes");
    // Stdout is refused for the hashes.
    lb.run(&[
        "export",
        "latest",
        "--source",
        "mysql",
        "--to",
        &lb.path("x.sql").display().to_string(),
        "--users-to",
        "-",
        "--restore-key-file",
        &rk,
    ])
    .code(2);

    let new = server();
    new.sql(&format!(
        "CREATE DATABASE clinic2; USE clinic2; source {data};"
    ))
    .expect("the stock client loads the data");
    new.sql(&format!("source {users};"))
        .expect("the stock client loads the accounts");
    let app = |sql: &str| new.sql_as("app", Some("App-pass-1"), Some("clinic2"), sql);
    assert_eq!(app("SELECT COUNT(*) FROM patients").unwrap().trim(), "2");
    app("INSERT INTO notes VALUES (2, 'second', 'dr b'); UPDATE notes SET body = 'x' WHERE id = 1")
        .unwrap();
    assert_eq!(app("SELECT CURRENT_ROLE()").unwrap().trim(), "reporting");
    for denied in [
        "UPDATE notes SET author = 'x' WHERE id = 1",
        "DELETE FROM notes WHERE id = 1",
    ] {
        let e = app(denied).unwrap_err();
        assert!(e.contains("denied"), "{denied}: {e}");
    }
    let before = grants(&new, "'app'@'%'");
    assert!(
        before
            .iter()
            .all(|g| !g.contains("PROCESS") && !g.contains("`billing`") && !g.contains("`clinic`")),
        "{before:?}"
    );
    assert!(
        before.iter().any(|g| g.contains("ON `clinic2`.*")),
        "{before:?}"
    );

    // Loaded again: the first CREATE fails and the client stops; no grant
    // reaches the accounts that now exist.
    new.sql("REVOKE INSERT ON clinic2.* FROM 'app'@'%'")
        .unwrap();
    let again = new.load(None, users.as_ref()).unwrap_err();
    assert!(again.contains("1396"), "{again}");
    let after = grants(&new, "'app'@'%'");
    assert!(
        after.iter().all(|g| !g.contains("INSERT")),
        "a grant reached an existing account: {after:?}"
    );
}
