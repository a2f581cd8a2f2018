//! An HTTP/1.1 proxy between lifeboat and a test server that logs every
//! request and can break chosen ones: to count requests (how many GETs did
//! a backup make?) and to inject faults: an error status, a connection reset
//! before the answer, an answer cut short, a 200 whose body has one byte
//! flipped, an upload whose body is flipped on its way to the server, or a
//! slow answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path without the query, percent-encoded as sent.
    pub path: String,
    /// The query string (may be empty).
    pub query: String,
}

impl Request {
    /// Whether this request creates or replaces an object's content: a
    /// PutObject (which the SDK sends with `?x-id=PutObject`) or a
    /// multipart upload's completion, not a part, a retention or tags.
    pub fn writes_object(&self) -> bool {
        let has = |p: &str| {
            self.query
                .split('&')
                .any(|q| q.split('=').next() == Some(p))
        };
        match self.method.as_str() {
            "PUT" => {
                !has("partNumber") && !has("retention") && !has("tagging") && !has("legal-hold")
            }
            "POST" => has("uploadId"),
            _ => false,
        }
    }
}

/// What the proxy does to one request instead of relaying it faithfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an S3-style XML error body.
    Status(u16),
    /// Read the request, then reset the connection (TCP RST) unanswered.
    Reset,
    /// Relay the answer's head and half its body, then reset.
    Truncate,
    /// Relay the answer with one byte of a 2xx body flipped.
    CorruptResponse,
    /// Relay the request with one byte of its body flipped.
    CorruptRequest,
    /// Wait this long, then relay faithfully.
    Delay(std::time::Duration),
}

type Rule = dyn Fn(&Request) -> Option<Fault> + Send + Sync;

/// A running proxy; it stops accepting when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`: give this to lifeboat as the endpoint.
    pub endpoint: String,
    log: Arc<Mutex<Vec<Request>>>,
    fault: Arc<Mutex<Option<Box<Rule>>>>,
}

impl Proxy {
    /// Forward to `upstream` (`http://HOST:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let fault: Arc<Mutex<Option<Box<Rule>>>> = Arc::default();
        let (l, f) = (log.clone(), fault.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (l, f, up) = (l.clone(), f.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &up, &l, &f);
                });
            }
        });
        Proxy {
            endpoint,
            log,
            fault,
        }
    }

    /// Answer requests for which `f` returns a status with that status
    /// (and an S3-style XML error body) instead of forwarding them.
    pub fn set_fault(&self, f: impl Fn(&Request) -> Option<u16> + Send + Sync + 'static) {
        self.set_faults(move |r| f(r).map(Fault::Status));
    }

    /// Apply the fault `f` returns to each request (`None`: relay it).
    pub fn set_faults(&self, f: impl Fn(&Request) -> Option<Fault> + Send + Sync + 'static) {
        *self.fault.lock().expect("fault lock") = Some(Box::new(f));
    }

    /// Forward everything again.
    pub fn clear_fault(&self) {
        *self.fault.lock().expect("fault lock") = None;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log lock").clone()
    }

    /// Forget the requests so far.
    pub fn reset(&self) {
        self.log.lock().expect("log lock").clear();
    }

    /// Object GETs so far (GET requests that are not listings).
    pub fn object_gets(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && !r.query.contains("list-type") && r.path.len() > 1)
            .filter(|r| r.path.trim_start_matches('/').contains('/'))
            .count()
    }
}

struct Head {
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn write_to(&self, w: &mut dyn Write, skip: &[&str]) -> std::io::Result<()> {
        let mut out = format!("{}\r\n", self.first);
        for (k, v) in &self.headers {
            if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str("\r\n");
        w.write_all(out.as_bytes())
    }
}

fn read_head(r: &mut dyn BufRead) -> std::io::Result<Option<Head>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head {
        first: first.trim_end().to_string(),
        headers,
    }))
}

/// Copy a body framed by `head` from `r` to `w`.
fn relay_body(
    head: &Head,
    r: &mut dyn BufRead,
    w: &mut dyn Write,
    until_eof: bool,
) -> std::io::Result<()> {
    if let Some(n) = head
        .get("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        let copied = std::io::copy(&mut r.take(n), w)?;
        if copied != n {
            return Err(std::io::Error::other("body cut short"));
        }
    } else if head
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            w.write_all(size.as_bytes())?;
            let n = u64::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            std::io::copy(&mut r.take(n + 2), w)?;
            if n == 0 {
                break;
            }
        }
    } else if until_eof {
        std::io::copy(r, w)?;
    }
    Ok(())
}

fn status_of(resp: &Head) -> u16 {
    resp.first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Close with a TCP reset rather than an orderly FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Read a body framed by `head` into memory (the proxy's own faults only).
fn read_body(head: &Head, r: &mut dyn BufRead, until_eof: bool) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    relay_body(head, r, &mut body, until_eof)?;
    Ok(body)
}

fn flip_middle(body: &mut [u8]) {
    if let Some(b) = body.get_mut(body.len() / 2) {
        *b ^= 0x20;
    }
}

fn serve(
    client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<Request>>,
    fault: &Mutex<Option<Box<Rule>>>,
) -> std::io::Result<()> {
    let mut client_w = client.try_clone()?;
    let mut client_r = BufReader::new(client);
    let mut up: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while let Some(req) = read_head(&mut client_r)? {
        let mut parts = req.first.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let info = Request {
            method: method.clone(),
            path: path.to_string(),
            query: query.to_string(),
        };
        log.lock().expect("log lock").push(info.clone());
        if req
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            client_w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let injected = fault
            .lock()
            .expect("fault lock")
            .as_ref()
            .and_then(|f| f(&info));
        match injected {
            Some(Fault::Status(status)) => {
                relay_body(&req, &mut client_r, &mut std::io::sink(), false)?;
                // The code S3 sends with that status: the SDK retries by
                // code (InternalError, SlowDown), not by status alone.
                let (code, message) = match status {
                    403 => ("AccessDenied", "Access Denied"),
                    404 => ("NoSuchKey", "The specified key does not exist."),
                    412 => (
                        "PreconditionFailed",
                        "At least one of the pre-conditions you specified did not hold",
                    ),
                    503 => ("SlowDown", "Please reduce your request rate."),
                    _ => ("InternalError", "injected by the test proxy"),
                };
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
                        <Message>{message}</Message></Error>"
                );
                write!(
                    client_w,
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                continue;
            }
            Some(Fault::Reset) => {
                relay_body(&req, &mut client_r, &mut std::io::sink(), false)?;
                reset(&client_w);
                return Ok(());
            }
            Some(Fault::Delay(d)) => std::thread::sleep(d),
            _ => {}
        }
        if up.is_none() {
            let s = TcpStream::connect(upstream)?;
            let r = BufReader::new(s.try_clone()?);
            up = Some((s, r));
        }
        let Some((up_w, up_r)) = up.as_mut() else {
            break;
        };
        req.write_to(up_w, &["expect"])?;
        if injected == Some(Fault::CorruptRequest) {
            let mut body = read_body(&req, &mut client_r, false)?;
            flip_middle(&mut body);
            up_w.write_all(&body)?;
        } else {
            relay_body(&req, &mut client_r, up_w, false)?;
        }
        let Some(resp) = read_head(up_r)? else {
            break;
        };
        let status = status_of(&resp);
        let no_body = method == "HEAD" || status == 204 || status == 304 || status < 200;
        let framed =
            resp.get("content-length").is_some() || resp.get("transfer-encoding").is_some();
        match injected {
            Some(Fault::Truncate) if !no_body => {
                let body = read_body(&resp, up_r, true)?;
                resp.write_to(&mut client_w, &[])?;
                client_w.write_all(&body[..body.len() / 2])?;
                client_w.flush()?;
                reset(&client_w);
                return Ok(());
            }
            Some(Fault::CorruptResponse) if !no_body && (200..300).contains(&status) => {
                // Bodies as relayed (a chunked one with its framing; S3
                // objects come with a Content-Length, so the flip lands in
                // the data).
                let mut body = read_body(&resp, up_r, true)?;
                flip_middle(&mut body);
                resp.write_to(&mut client_w, &[])?;
                client_w.write_all(&body)?;
            }
            _ => {
                resp.write_to(&mut client_w, &[])?;
                if !no_body {
                    relay_body(&resp, up_r, &mut client_w, true)?;
                    if !framed {
                        break; // the body ended with the connection
                    }
                }
            }
        }
        client_w.flush()?;
        if resp
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            up = None;
        }
    }
    Ok(())
}
