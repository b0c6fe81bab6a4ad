//! The Prometheus source against misbehaving servers, over real HTTP on loopback: the URL is
//! the Study author's choice, so the answer may come from anything. Each server here is a few
//! lines of raw HTTP/1.1 on a `TcpListener`, to control exactly what goes over the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use lopper::metrics::prometheus::{
    MAX_BODY_BYTES, MAX_REDIRECTS, PromClient, PromError, RedirectRefusal,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "SECRET-INTERNAL-TEXT";

const ANSWER: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"trial":"t-0"},"value":[100.5,"0.25"]}]}}"#;

/// One request as the server read it.
struct Request {
    /// `POST /api/v1/query HTTP/1.1`
    line: String,
    body: String,
}

type Handler = Arc<dyn Fn(TcpStream, Request) -> BoxFuture<'static, ()> + Send + Sync>;

/// Serves `handler` on `ip`:0; returns the address and the count of requests read.
async fn serve(ip: &str, handler: Handler) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let counter = counter.clone();
            // One request per connection (answers say `Connection: close`).
            tokio::spawn(async move {
                if let Some(req) = read_request(&mut stream).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    handler(stream, req).await;
                }
            });
        }
    });
    (addr, hits)
}

/// Reads the head and the `Content-Length` body of one request.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        line: head.lines().next().unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
    })
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(TcpStream, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |s, r| Box::pin(f(s, r)))
}

/// Writes a whole response with a `Content-Length` and closes the connection.
async fn respond(mut s: TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
}

fn client(addr: SocketAddr, timeout: Duration) -> PromClient {
    PromClient::new(&format!("http://{addr}"), None, timeout).expect("client")
}

#[tokio::test]
async fn a_good_answer_is_read() {
    let (addr, hits) = serve(
        "127.0.0.1",
        handler(|s, req| async move {
            assert_eq!(req.line, "POST /api/v1/query HTTP/1.1");
            assert_eq!(req.body, "query=up");
            respond(s, "200 OK", &[], ANSWER.as_bytes()).await
        }),
    )
    .await;
    let samples = client(addr, Duration::from_secs(5))
        .query("up")
        .await
        .unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels["trial"], "t-0");
    assert_eq!((samples[0].ts, samples[0].value), (100.5, 0.25));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_of_exactly_the_limit_is_read() {
    let mut body = ANSWER.as_bytes().to_vec();
    body.resize(MAX_BODY_BYTES as usize, b' ');
    let body = Arc::new(body);
    let (addr, _) = serve(
        "127.0.0.1",
        handler(move |s, _| {
            let body = body.clone();
            async move { respond(s, "200 OK", &[], &body).await }
        }),
    )
    .await;
    let samples = client(addr, Duration::from_secs(20))
        .query("up")
        .await
        .unwrap();
    assert_eq!(samples.len(), 1);
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_without_reading_it() {
    // Declares one byte over the limit, then sends nothing: only the header can tell.
    let (addr, _) = serve(
        "127.0.0.1",
        handler(|mut s, _| async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{{",
                MAX_BODY_BYTES + 1
            );
            let _ = s.write_all(head.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }),
    )
    .await;
    let t = Instant::now();
    let e = client(addr, Duration::from_secs(30))
        .query("up")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PromError::TooLarge {
            limit: MAX_BODY_BYTES
        }
    );
    // Well before the timeout: nothing was waited for after the header.
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(
        e.to_string(),
        format!("prometheus answer: body larger than {MAX_BODY_BYTES} bytes")
    );
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off_at_the_limit() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let (addr, _) = serve(
        "127.0.0.1",
        handler(move |mut s, _| {
            let counter = counter.clone();
            async move {
                let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let data = vec![b' '; 64 << 10];
                loop {
                    let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
                    chunk.extend_from_slice(&data);
                    chunk.extend_from_slice(b"\r\n");
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    counter.fetch_add(data.len(), Ordering::SeqCst);
                }
            }
        }),
    )
    .await;
    let t = Instant::now();
    let e = client(addr, Duration::from_secs(60))
        .query("up")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PromError::TooLarge {
            limit: MAX_BODY_BYTES
        }
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    // The client stopped reading: the server could not push much past the limit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = sent.load(Ordering::SeqCst) as u64;
    assert!(total < MAX_BODY_BYTES + (16 << 20), "{total} bytes sent");
}

#[tokio::test]
async fn a_body_that_trickles_times_out_within_the_timeout() {
    let (addr, _) = serve(
        "127.0.0.1",
        handler(|mut s, _| async move {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // One byte every 100 ms: each read makes progress, the whole never arrives.
            for _ in 0..100_000 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(b" ").await.is_err() {
                    return;
                }
            }
        }),
    )
    .await;
    let timeout = Duration::from_secs(1);
    let t = Instant::now();
    let e = client(addr, timeout).query("up").await.unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(e, PromError::Timeout { after, .. } if after == timeout),
        "{e:?}"
    );
    assert!(e.to_string().contains("timed out after 1s"), "{e}");
    // The server would trickle for hours: the poller is free again right after the timeout.
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (addr, _) = serve(
        "127.0.0.1",
        handler(|s, _| async move {
            // Holds the connection open without a word.
            let _open = s;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }),
    )
    .await;
    let t = Instant::now();
    let e = client(addr, Duration::from_secs(1))
        .query("up")
        .await
        .unwrap_err();
    assert!(matches!(e, PromError::Timeout { .. }), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused() {
    // The other host: 127.0.0.2 (all of 127/8 is loopback), which must never be asked.
    let (other, other_hits) = serve(
        "127.0.0.2",
        handler(|s, _| async move { respond(s, "200 OK", &[], ANSWER.as_bytes()).await }),
    )
    .await;
    let location = format!("http://{other}/{SECRET}/api/v1/query");
    let (addr, hits) =
        serve(
            "127.0.0.1",
            handler(move |s, _| {
                let location = location.clone();
                async move {
                    respond(s, "307 Temporary Redirect", &[("Location", &location)], b"").await
                }
            }),
        )
        .await;
    let e = client(addr, Duration::from_secs(5))
        .query("up")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PromError::RedirectRefused {
            url: format!("http://{addr}"),
            reason: RedirectRefusal::OtherHost
        }
    );
    let msg = e.to_string();
    assert!(msg.contains("redirect to another host refused"), "{msg}");
    assert!(!msg.contains(SECRET) && !msg.contains("127.0.0.2"), "{msg}");
    assert_eq!(e.reason(), "RedirectRefused");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "the other host was asked"
    );
}

#[tokio::test]
async fn a_redirect_to_another_name_or_port_of_the_same_machine_is_refused() {
    let (elsewhere, elsewhere_hits) = serve(
        "127.0.0.1",
        handler(|s, _| async move { respond(s, "200 OK", &[], ANSWER.as_bytes()).await }),
    )
    .await;
    for target in ["localhost:{port}", "127.0.0.1:{other}"] {
        let (addr, hits) = serve(
            "127.0.0.1",
            handler(move |s, _| async move {
                let port = s.local_addr().unwrap().port();
                let location = format!(
                    "http://{}/api/v1/query",
                    target
                        .replace("{port}", &port.to_string())
                        .replace("{other}", &elsewhere.port().to_string())
                );
                respond(s, "308 Permanent Redirect", &[("Location", &location)], b"").await
            }),
        )
        .await;
        let e = client(addr, Duration::from_secs(5))
            .query("up")
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                PromError::RedirectRefused {
                    reason: RedirectRefusal::OtherHost,
                    ..
                }
            ),
            "{target}: {e:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{target}");
    }
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_on_the_same_host_is_followed() {
    let (addr, hits) = serve(
        "127.0.0.1",
        handler(|s, req| async move {
            if req.line.starts_with("POST /old/api/v1/query ") {
                let to = "/new/api/v1/query";
                respond(s, "307 Temporary Redirect", &[("Location", to)], b"").await
            } else {
                // 307 keeps the method and the body.
                assert_eq!(req.line, "POST /new/api/v1/query HTTP/1.1");
                assert_eq!(req.body, "query=up");
                respond(s, "200 OK", &[], ANSWER.as_bytes()).await
            }
        }),
    )
    .await;
    let c = PromClient::new(&format!("http://{addr}/old"), None, Duration::from_secs(5)).unwrap();
    let samples = c.query("up").await.unwrap();
    assert_eq!(samples[0].labels["trial"], "t-0");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_redirect_loop_on_the_same_host_stops() {
    let (addr, hits) = serve(
        "127.0.0.1",
        handler(|s, _| async move {
            let to = "/api/v1/query";
            respond(s, "307 Temporary Redirect", &[("Location", to)], b"").await
        }),
    )
    .await;
    let e = client(addr, Duration::from_secs(5))
        .query("up")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            PromError::RedirectRefused {
                reason: RedirectRefusal::TooMany,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn an_error_answer_is_reported_by_status_without_its_text() {
    let (addr, _) = serve(
        "127.0.0.1",
        handler(|s, req| async move {
            if req.body == "query=plain" {
                let body = format!("upstream said: {SECRET} (password=hunter2)");
                respond(s, "500 Internal Server Error", &[], body.as_bytes()).await
            } else if req.body == "query=json" {
                let body =
                    format!(r#"{{"status":"error","errorType":"bad_data","error":"{SECRET}"}}"#);
                respond(s, "400 Bad Request", &[], body.as_bytes()).await
            } else {
                let body = format!("<html><body>{SECRET}</body></html>");
                respond(
                    s,
                    "200 OK",
                    &[("Content-Type", "text/html")],
                    body.as_bytes(),
                )
                .await
            }
        }),
    )
    .await;
    let c = client(addr, Duration::from_secs(5));
    for (q, want) in [
        ("plain", "prometheus answered HTTP 500"),
        ("json", "prometheus answered HTTP 400 (bad_data)"),
        ("html", "body is not Prometheus JSON"),
    ] {
        let e = c.query(q).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "{q}: {msg}");
        assert!(
            !msg.contains(SECRET) && !msg.contains("hunter2"),
            "{q}: {msg}"
        );
        assert!(!format!("{e:?}").contains(SECRET), "{q}: {e:?}");
    }
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = PromClient::new(
        &format!("http://127.0.0.1:{port}"),
        None,
        Duration::from_secs(2),
    )
    .unwrap()
    .query("up")
    .await
    .unwrap_err();
    assert_eq!(
        e,
        PromError::Unreachable {
            url: format!("http://127.0.0.1:{port}"),
            cause: "connection refused"
        }
    );
    assert_eq!(e.reason(), "PrometheusUnreachable");
}
