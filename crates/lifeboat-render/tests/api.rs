//! The API client against the fake Render API: paging, errors that say
//! what to do, retries.

use lifeboat_render::{Client, Error, RenderOptions};
use lifeboat_store::secrecy::SecretString;
use lifeboat_testkit::render::{FakeRender, Fault, World};

const KEY: &str = "rnd_ClientTestKey42";

fn client(fake: &FakeRender, key: &str, page: u32) -> Client {
    let mut o = RenderOptions::new(SecretString::from(key.to_string()));
    o.api_url = fake.url.clone();
    o.page_size = page;
    o.retries = 2;
    o.backoff = std::time::Duration::from_millis(50);
    Client::new(&o).unwrap()
}

#[test]
fn lists_are_read_page_by_page_with_cursors() {
    let fake = FakeRender::start(World::clinic(1), KEY);
    let c = client(&fake, KEY, 20);
    let vars = c
        .list(
            "/services/srv-clinicapi000000000000/env-vars",
            "envVar",
            &[],
        )
        .unwrap();
    assert_eq!(vars.len(), 42);
    let keys: std::collections::BTreeSet<&str> =
        vars.iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 42, "a page was read twice or skipped");
    assert_eq!(c.requests().sent, 3);
    // Page size 7: 42 = 6 full pages + an empty one.
    let c = client(&fake, KEY, 7);
    let vars = c
        .list(
            "/services/srv-clinicapi000000000000/env-vars",
            "envVar",
            &[],
        )
        .unwrap();
    assert_eq!(vars.len(), 42);
    assert_eq!(c.requests().sent, 7);
}

#[test]
fn errors_name_the_problem_and_never_the_key() {
    let fake = FakeRender::start(World::clinic(1), KEY);
    let bad = "rnd_NotTheKey";
    let e = client(&fake, bad, 20).get("/services").unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("api_key") && !msg.contains(bad), "{msg}");
    let e = client(&fake, KEY, 20)
        .get("/services/srv-gone")
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("/services/srv-gone"));
    // A page size Render would refuse is refused before any request.
    let mut o = RenderOptions::new(SecretString::from(KEY.to_string()));
    o.api_url = fake.url.clone();
    o.page_size = 101;
    assert!(Client::new(&o).is_err(), "page_size 101 accepted");
    // Nothing listening: a transport error naming the URL.
    let mut o = RenderOptions::new(SecretString::from(KEY.to_string()));
    o.api_url = "http://127.0.0.1:9/v1".into();
    o.retries = 0;
    let e = Client::new(&o).unwrap().get("/services").unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    let fake = FakeRender::start(World::clinic(1), KEY);
    let c = client(&fake, KEY, 100);
    fake.fail_next([Fault::RateLimit { retry_after: 0 }, Fault::Status(503)]);
    let services = c.list("/services", "service", &[]).unwrap();
    assert_eq!(services.len(), 2);
    let r = c.requests();
    assert_eq!((r.sent, r.rate_limited, r.retried), (3, 1, 2));
    // One fault more than the retries allow: an error saying so.
    fake.fail_next([Fault::Status(500); 3]);
    let e = c.list("/services", "service", &[]).unwrap_err();
    assert!(
        e.to_string().contains("still failing after 3 attempts"),
        "{e}"
    );
}
