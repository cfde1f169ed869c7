//! Real HTTP servers and clients on 127.0.0.1 for the integration tests (feature `http`): an
//! axum app served on a free port, a hyper HTTP/1 connection to it, and a response body the
//! test streams chunk by chunk.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Serves `app` on 127.0.0.1 at a free port; returns its address and the server's task (abort
/// it, or let the runtime end it).
///
/// # Panics
///
/// When no port can be bound, or when the server fails.
pub async fn serve(app: axum::Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (addr, server)
}

/// Opens one HTTP/1 connection to `addr` (its driver runs on a task of its own) and returns its
/// sender of body-less requests.
///
/// # Panics
///
/// When the connection or the handshake fails.
pub async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// A `GET /` with a `host` header and no body.
///
/// # Panics
///
/// Never: the request is valid.
#[must_use]
pub fn get_root() -> http::Request<Empty<Bytes>> {
    http::Request::get("/")
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .expect("valid request")
}

/// A response body whose chunks the test sends through an `mpsc` channel: it ends when the
/// sender is dropped, so a test decides when a streamed response is over.
#[derive(Debug)]
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl ChannelBody {
    /// A body and the sender of its chunks (up to `buffer` sent ahead of the reader).
    #[must_use]
    pub fn channel(buffer: usize) -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(buffer);
        (tx, Self(rx))
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
