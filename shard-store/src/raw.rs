//! The raw file channel: the bytes of a shard file on their way from the source of a move to
//! its target, outside gRPC, on the worker's own port.
//!
//! ```text
//! target (pull_files)                                  source (one port for both)
//! connect ─ "SHOALRAW1" u32 len JSON RawRequest ─────► accept; peek the first byte:
//!                                                        'P' (HTTP/2 preface) → tonic
//!                                                        'S' → read the magic and request,
//!                                                        check the token, validate the name,
//!                                                        open the file
//!         ◄─ "SHOALRAW1" u32 len JSON RawResponse ───  Sending { bytes } or Refused { status }
//!         ◄─ exactly `bytes` bytes of the file, FIN ─  thread (nice 19): sendfile(2)
//! thread (nice 19): read into a reused 1 MiB buffer,
//! rate limit, CRC-32C, write `.part`, fsync, verify
//! ```
//!
//! Lengths are little-endian. One file per connection: a connection costs far less than the
//! files a move sends, and the end of the file is then simply the end of the stream. A target
//! that gets anything but the magic back (an older worker closes the connection on a bad
//! HTTP/2 preface) uses the Flight DoGet instead.

use std::cmp::min;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_rustls::rustls::{ClientConnection, ServerConnection, StreamOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Code, Status};
use tracing::{debug, info, warn};

use crate::error::{Result, ShardStoreError};
use crate::failpoints::FailpointSet;
use crate::files::{blocking, FileStore, PullSource};
use crate::protocol::FileTicket;
use crate::service::{failed, TokenCheck};
use crate::tls::{ClusterTls, ALPN_H2, ALPN_RAW};
use crate::transfer::{TokenBucket, CHUNK_BYTES, FAILPOINT_PULL_CORRUPT_ONCE};

/// First bytes of a raw request and of its answer; the digit is the protocol version. Its
/// first byte differs from the first byte of the HTTP/2 preface (`PRI * HTTP/2.0`), which is
/// what the listener looks at.
pub(crate) const RAW_MAGIC: &[u8; 9] = b"SHOALRAW1";

/// Largest request or response header accepted.
const MAX_HEADER_BYTES: u32 = 64 * 1024;

/// Time allowed for connecting to a source.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Time allowed for the first byte of a new connection, and for a raw request or response
/// header to arrive in full.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A transfer socket on which nothing moves for this long is given up (`SO_RCVTIMEO` on the
/// target, `SO_SNDTIMEO` on the source), so a vanished peer cannot hold a thread forever.
/// The target's rate limiter never pauses a read for more than a fraction of it.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes per `sendfile(2)` call on the source.
const SENDFILE_BYTES: usize = 8 * 1024 * 1024;

/// New connections waiting for tonic to take them.
const HTTP2_BACKLOG: usize = 64;

/// Nice value of the threads that move file bytes (see [`lower_priority`]).
const TRANSFER_NICE: i32 = 19;

/// With a rate limit, the target reads at most this share of a second's worth of bytes
/// between two waits, so that each wait stays short (and well under [`IO_TIMEOUT`]).
const RATE_LIMITED_READS_PER_S: u64 = 8;

/// Smallest read between two waits of the rate limiter.
const MIN_RATE_LIMITED_READ: u64 = 16 * 1024;

/// Longest single sleep of the target's thread: it checks for cancellation in between.
const CANCEL_CHECK: Duration = Duration::from_millis(100);

/// What the target sends after [`RAW_MAGIC`].
#[derive(Debug, Serialize, Deserialize)]
struct RawRequest {
    /// What a Flight call carries in its `authorization` header: `Bearer <cluster token>`.
    authorization: Option<String>,
    /// The file, exactly as a Flight file ticket names it.
    file: FileTicket,
}

/// What the source answers after [`RAW_MAGIC`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawResponse {
    /// `bytes` bytes of the file follow (from the requested offset to its end), then the
    /// source closes the connection.
    Sending { bytes: u64 },
    /// Nothing follows: the status a Flight DoGet of the same ticket would have failed with
    /// (its gRPC code, message and details), so the target reports the same error.
    Refused {
        code: i32,
        message: String,
        details: String,
    },
}

impl RawResponse {
    fn refused(status: &Status) -> Self {
        RawResponse::Refused {
            code: status.code() as i32,
            message: status.message().to_string(),
            details: String::from_utf8_lossy(status.details()).into_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Listener: one port, two protocols.
// ---------------------------------------------------------------------------------------

/// One connection of the worker's port handed to tonic: plain TCP, or TLS once the handshake
/// chose HTTP/2.
pub(crate) enum WorkerConn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl WorkerConn {
    fn tcp(&self) -> &TcpStream {
        match self {
            WorkerConn::Plain(s) => s,
            WorkerConn::Tls(s) => s.get_ref().0,
        }
    }
}

impl Connected for WorkerConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp().connect_info()
    }
}

impl AsyncRead for WorkerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WorkerConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            WorkerConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WorkerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WorkerConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            WorkerConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WorkerConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            WorkerConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WorkerConn::Plain(s) => s.is_write_vectored(),
            WorkerConn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WorkerConn::Plain(s) => Pin::new(s).poll_flush(cx),
            WorkerConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WorkerConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            WorkerConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections for tonic. Accepting runs in a task of its own; dropping this (tonic does
/// when shutdown starts) stops it and closes the listening socket.
pub(crate) struct Http2Incoming {
    rx: mpsc::Receiver<WorkerConn>,
    accept: tokio::task::JoinHandle<()>,
}

impl Stream for Http2Incoming {
    type Item = io::Result<WorkerConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|stream| stream.map(Ok))
    }
}

impl Drop for Http2Incoming {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// How the port routes a new connection.
#[derive(Clone)]
pub(crate) struct PortRouting {
    /// Serves raw file requests; without it, everything goes to tonic (a worker from before
    /// the raw channel, for tests of the fallback).
    pub(crate) raw: Option<Arc<RawFileServer>>,
    /// With TLS, every connection must complete a TLS handshake first (see `tls.rs`).
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Accepts the connections of `listener`: raw file requests are served by `routing.raw`,
/// the rest (HTTP/2) is handed to tonic through the returned stream.
pub(crate) fn split_incoming(listener: TcpListener, routing: PortRouting) -> Http2Incoming {
    let (tx, rx) = mpsc::channel(HTTP2_BACKLOG);
    let accept = tokio::spawn(accept_loop(listener, tx, routing));
    Http2Incoming { rx, accept }
}

async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<WorkerConn>, routing: PortRouting) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(route(stream, peer, tx.clone(), routing.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Sends one new connection where it belongs. With TLS, the handshake comes first (a peer
/// that does not complete it, plaintext included, is dropped) and its ALPN protocol decides.
/// Without, only the first byte is peeked: `peek` returns whatever has arrived, so waiting
/// for more bytes would mean polling, while one byte already tells the two protocols apart.
/// A raw request's full magic is then read and checked; anything else goes to tonic
/// untouched (which refuses what is not HTTP/2).
async fn route(
    stream: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<WorkerConn>,
    routing: PortRouting,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    if let Some(acceptor) = &routing.tls {
        let stream = match timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                warn!(%peer, error = %e, "refused a connection: TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "refused a connection: no TLS handshake in time");
                return;
            }
        };
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        match (alpn.as_deref(), &routing.raw) {
            (Some(ALPN_RAW), Some(raw)) => raw.serve(stream, peer).await,
            (Some(ALPN_H2), _) => {
                let _ = tx.send(WorkerConn::Tls(Box::new(stream))).await;
            }
            (other, _) => warn!(
                %peer,
                alpn = ?other.map(String::from_utf8_lossy),
                "refused a TLS connection: unknown protocol"
            ),
        }
        return;
    }
    let mut first = [0u8; 1];
    match timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(0)) => debug!(%peer, "connection closed before its first byte"),
        Ok(Ok(_)) if first[0] == RAW_MAGIC[0] && routing.raw.is_some() => {
            if let Some(raw) = &routing.raw {
                raw.serve(stream, peer).await
            }
        }
        Ok(Ok(_)) => {
            // Fails only once the server is shutting down: the connection is then dropped.
            let _ = tx.send(WorkerConn::Plain(stream)).await;
        }
        Ok(Err(e)) => debug!(%peer, error = %e, "connection failed before its first byte"),
        Err(_) => debug!(%peer, "connection sent nothing; closed"),
    }
}

// ---------------------------------------------------------------------------------------
// Source side.
// ---------------------------------------------------------------------------------------

/// The source side of the raw channel of one worker.
pub(crate) struct RawFileServer {
    store: Arc<FileStore>,
    auth: TokenCheck,
}

impl RawFileServer {
    pub(crate) fn new(store: Arc<FileStore>, auth: TokenCheck) -> Self {
        RawFileServer { store, auth }
    }

    /// Serves one raw connection: reads the request, answers, and leaves the sending of
    /// the bytes to a thread of its own.
    async fn serve<S: RawConn>(&self, mut stream: S, peer: SocketAddr) {
        let request = match timeout(HEADER_TIMEOUT, read_request(&mut stream)).await {
            Ok(Ok(request)) => request,
            Ok(Err(e)) => {
                warn!(%peer, error = %e, "refused a raw connection: bad request");
                return;
            }
            Err(_) => {
                warn!(%peer, "refused a raw connection: incomplete request");
                return;
            }
        };
        let (file, path, offset, bytes) = match self.open(request, peer).await {
            Ok(opened) => opened,
            Err(status) => {
                let refusal = RawResponse::refused(&status);
                match timeout(HEADER_TIMEOUT, write_frame(&mut stream, &refusal)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, error = %e, "cannot send a refusal"),
                    Err(_) => debug!(%peer, "cannot send a refusal: the peer does not read"),
                }
                return;
            }
        };
        let answer = RawResponse::Sending { bytes };
        match timeout(HEADER_TIMEOUT, write_frame(&mut stream, &answer)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "raw transfer: the target went away");
                return;
            }
            Err(_) => {
                debug!(%peer, "raw transfer: the target does not read");
                return;
            }
        }
        let socket = match stream.into_sender() {
            Ok(socket) => socket,
            Err(e) => {
                warn!(%peer, error = %e, "raw transfer: cannot set up the socket");
                return;
            }
        };
        let spawned = spawn_transfer_thread("shoal-sendfile", move || {
            lower_priority();
            let started = Instant::now();
            match socket.send(&file, offset, bytes) {
                Ok(()) => debug!(
                    %peer,
                    path = %path.display(),
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "sent a shard file over the raw channel"
                ),
                // Also what a target that cancels its pull looks like.
                Err(e) => info!(
                    %peer,
                    path = %path.display(),
                    error = %e,
                    "raw transfer of a shard file ended early"
                ),
            }
        });
        if let Err(e) = spawned {
            warn!(%peer, error = %e, "raw transfer: cannot start the sending thread");
        }
    }

    /// Checks the token and opens the named file, as the Flight service would for the same
    /// file ticket; a refusal is the status the Flight call would have failed with.
    async fn open(
        &self,
        request: RawRequest,
        peer: SocketAddr,
    ) -> std::result::Result<(File, PathBuf, u64, u64), Status> {
        let RawRequest {
            authorization,
            file,
        } = request;
        if !self
            .auth
            .accepts(authorization.as_deref().map(str::as_bytes))
        {
            warn!(
                %peer,
                token_given = authorization.is_some(),
                "refused a raw file transfer: cluster token missing or wrong"
            );
            return Err(Status::unauthenticated("cluster token missing or wrong"));
        }
        let FileTicket {
            table_id,
            shard_id,
            name,
            offset,
        } = file;
        // `file_path` and `open_shard_file` refuse names that could leave the shard directory.
        let path = self
            .store
            .file_path(table_id, shard_id, &name)
            .map_err(|e| failed("raw_file", e))?;
        let store = Arc::clone(&self.store);
        let opened = blocking(move || store.open_shard_file(table_id, shard_id, &name, offset))
            .await
            .map_err(|e| failed("raw_file", e))?;
        let (file, len) = opened;
        debug!(%peer, path = %path.display(), offset, len, "sending a shard file (raw)");
        Ok((file, path, offset, len - offset))
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<RawRequest> {
    let mut magic = [0u8; RAW_MAGIC.len()];
    stream.read_exact(&mut magic).await?;
    if &magic != RAW_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a shoal raw request (bad magic)",
        ));
    }
    read_body(stream).await
}

/// Reads a length-prefixed JSON value.
async fn read_body<T: DeserializeOwned, S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<T> {
    let len = stream.read_u32_le().await?;
    if len > MAX_HEADER_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raw header of {len} bytes is too large"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes [`RAW_MAGIC`] and a length-prefixed JSON value in one write.
async fn write_frame<T: Serialize, S: AsyncWrite + Unpin>(
    stream: &mut S,
    value: &T,
) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|len| *len <= MAX_HEADER_BYTES)
        .ok_or_else(|| io::Error::other("raw header too large"))?;
    let mut frame = Vec::with_capacity(RAW_MAGIC.len() + 4 + json.len());
    frame.extend_from_slice(RAW_MAGIC);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&json);
    stream.write_all(&frame).await?;
    // TLS may hold the last record back until flushed.
    stream.flush().await
}

/// A raw connection of the source, in its request/answer phase (async).
pub(crate) trait RawConn: AsyncRead + AsyncWrite + Unpin + Send {
    /// The connection as a blocking one, for the thread that sends the file.
    fn into_sender(self) -> io::Result<FileSender>;
}

impl RawConn for TcpStream {
    fn into_sender(self) -> io::Result<FileSender> {
        Ok(FileSender::Plain(blocking_socket(
            self,
            SocketTimeout::Write,
        )?))
    }
}

impl RawConn for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_sender(self) -> io::Result<FileSender> {
        // Whatever rustls holds already (records read ahead, plaintext not yet written) stays
        // in the connection and goes on through the blocking stream.
        let (tcp, conn) = self.into_inner();
        let socket = blocking_socket(tcp, SocketTimeout::Write)?;
        Ok(FileSender::Tls(Box::new(StreamOwned::new(conn, socket))))
    }
}

/// The source's end of a raw transfer, blocking, for its sending thread.
pub(crate) enum FileSender {
    Plain(std::net::TcpStream),
    Tls(Box<StreamOwned<ServerConnection, std::net::TcpStream>>),
}

impl FileSender {
    /// Sends `bytes` bytes of `file` from `offset`, then ends the stream.
    fn send(self, file: &File, offset: u64, bytes: u64) -> io::Result<()> {
        match self {
            FileSender::Plain(socket) => send_file(file, &socket, offset, bytes),
            // TLS encrypts in this process: the bytes go through a buffer.
            FileSender::Tls(mut tls) => {
                use std::io::Write;
                use std::os::unix::fs::FileExt;
                let mut buf =
                    vec![0u8; usize::try_from(bytes).map_or(CHUNK_BYTES, |b| min(b, CHUNK_BYTES))];
                let (mut at, mut left) = (offset, bytes);
                while left > 0 {
                    let want = usize::try_from(left).map_or(buf.len(), |l| min(l, buf.len()));
                    let n = file.read_at(&mut buf[..want], at)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the file ended {left} bytes early"),
                        ));
                    }
                    tls.write_all(&buf[..n])?;
                    at += n as u64;
                    left -= n as u64;
                }
                tls.conn.send_close_notify();
                tls.flush()?;
                tls.sock.shutdown(std::net::Shutdown::Write)
            }
        }
    }
}

/// Sends `bytes` bytes of `file` from `offset` with `sendfile(2)`: from the page cache to
/// the socket inside the kernel, never through this process's memory.
fn send_file(file: &File, socket: &std::net::TcpStream, offset: u64, bytes: u64) -> io::Result<()> {
    let (mut offset, mut left) = (offset, bytes);
    while left > 0 {
        let count = usize::try_from(left).map_or(SENDFILE_BYTES, |l| min(l, SENDFILE_BYTES));
        match sendfile(socket, file, &mut offset, count) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ended {left} bytes early"),
                ))
            }
            Ok(n) => left -= n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    socket.shutdown(std::net::Shutdown::Write)
}

#[cfg(target_os = "linux")]
fn sendfile(
    socket: &std::net::TcpStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    Ok(rustix::fs::sendfile(socket, file, Some(offset), count)?)
}

/// Without `sendfile(2)`: a plain read and write through a buffer.
#[cfg(not(target_os = "linux"))]
fn sendfile(
    mut socket: &std::net::TcpStream,
    mut file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    use std::io::{Seek, SeekFrom, Write};
    let mut buf = vec![0u8; min(count, CHUNK_BYTES)];
    file.seek(SeekFrom::Start(*offset))?;
    let n = file.read(&mut buf)?;
    socket.write_all(&buf[..n])?;
    *offset += n as u64;
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Target side.
// ---------------------------------------------------------------------------------------

/// The outcome of asking a source for a file over the raw channel.
pub(crate) enum Opened {
    /// The source is sending the file: exactly `bytes` bytes follow on `socket` (blocking,
    /// with a read timeout).
    Sending { socket: RawSocket, bytes: u64 },
    /// The raw channel is not available: use Flight. `older` when the source answered, but
    /// not in this protocol (a worker from before the raw channel).
    Unavailable { reason: String, older: bool },
}

/// The target's end of a raw transfer, blocking, for its receiving thread.
pub(crate) enum RawSocket {
    Plain(std::net::TcpStream),
    Tls(Box<StreamOwned<ClientConnection, std::net::TcpStream>>),
}

impl RawSocket {
    /// The TCP socket under it (to shut it down from another thread).
    fn tcp(&self) -> &std::net::TcpStream {
        match self {
            RawSocket::Plain(s) => s,
            RawSocket::Tls(s) => &s.sock,
        }
    }
}

impl Read for RawSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RawSocket::Plain(s) => s.read(buf),
            RawSocket::Tls(s) => s.read(buf),
        }
    }
}

/// A raw connection of the target, in its request/answer phase (async).
trait RawClientConn: AsyncRead + AsyncWrite + Unpin + Send {
    fn into_socket(self) -> io::Result<RawSocket>;
}

impl RawClientConn for TcpStream {
    fn into_socket(self) -> io::Result<RawSocket> {
        Ok(RawSocket::Plain(blocking_socket(
            self,
            SocketTimeout::Read,
        )?))
    }
}

impl RawClientConn for tokio_rustls::client::TlsStream<TcpStream> {
    fn into_socket(self) -> io::Result<RawSocket> {
        let (tcp, conn) = self.into_inner();
        let socket = blocking_socket(tcp, SocketTimeout::Read)?;
        Ok(RawSocket::Tls(Box::new(StreamOwned::new(conn, socket))))
    }
}

/// Asks the worker at `addr` (`host:port` or `http(s)://host:port`) for `file` over the raw
/// channel, presenting `authorization` (`Bearer <token>`), over TLS when `tls` is given. A
/// refusal is the error the Flight call would have returned (`Unauthenticated`,
/// `FileMissing`, `Protocol`, ...).
pub(crate) async fn open(
    addr: &str,
    authorization: Option<&str>,
    tls: Option<&ClusterTls>,
    file: &FileTicket,
) -> Result<Opened> {
    let unavailable = |reason: String, older: bool| Ok(Opened::Unavailable { reason, older });
    let host_port = match addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
    {
        Some(rest) => rest.trim_end_matches('/'),
        None if addr.contains("://") => {
            return unavailable(format!("{addr} is not a plain TCP address"), false)
        }
        None => addr,
    };
    let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(host_port)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return unavailable(format!("cannot connect: {e}"), false),
        Err(_) => return unavailable("connecting timed out".into(), false),
    };
    if let Err(e) = stream.set_nodelay(true) {
        debug!(addr, error = %e, "cannot set TCP_NODELAY");
    }
    let request = RawRequest {
        authorization: authorization.map(String::from),
        file: file.clone(),
    };
    let Some(tls) = tls else {
        return exchange(stream, addr, &request).await;
    };
    let name = crate::tls::server_name(host_port)?;
    match timeout(HEADER_TIMEOUT, tls.raw_connector().connect(name, stream)).await {
        Ok(Ok(stream)) => exchange(stream, addr, &request).await,
        // Flight, tried next, fails the same way and says so to the caller.
        Ok(Err(e)) => unavailable(format!("TLS handshake failed: {e}"), false),
        Err(_) => unavailable("the TLS handshake timed out".into(), false),
    }
}

/// Sends `request` and reads the source's answer.
async fn exchange<S: RawClientConn>(
    mut stream: S,
    addr: &str,
    request: &RawRequest,
) -> Result<Opened> {
    let unavailable = |reason: String, older: bool| Ok(Opened::Unavailable { reason, older });
    let sent = async {
        write_frame(&mut stream, request).await?;
        let mut magic = [0u8; RAW_MAGIC.len()];
        stream.read_exact(&mut magic).await?;
        Ok::<_, io::Error>(magic)
    };
    match timeout(HEADER_TIMEOUT, sent).await {
        Ok(Ok(magic)) if &magic == RAW_MAGIC => {}
        Ok(Ok(_)) => return unavailable("the source answered in another protocol".into(), true),
        Ok(Err(e)) => {
            return unavailable(
                format!("the source closed the connection ({e})"),
                e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::ConnectionReset,
            )
        }
        Err(_) => return unavailable("the source did not answer".into(), false),
    }
    let response: RawResponse = match timeout(HEADER_TIMEOUT, read_body(&mut stream)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            return Err(ShardStoreError::protocol(format!(
                "bad raw answer from {addr}: {e}"
            )))
        }
        Err(_) => {
            return Err(ShardStoreError::Unavailable {
                addr: addr.to_string(),
                message: "the source stopped answering a raw file request".into(),
            })
        }
    };
    match response {
        RawResponse::Sending { bytes } => {
            let socket = stream.into_socket().map_err(|e| {
                ShardStoreError::internal(format!("cannot set up a raw transfer socket: {e}"))
            })?;
            Ok(Opened::Sending { socket, bytes })
        }
        RawResponse::Refused {
            code,
            message,
            details,
        } => Err(ShardStoreError::from_status(
            addr,
            Status::with_details(Code::from_i32(code), message, Bytes::from(details)),
        )),
    }
}

/// The file bytes arriving on a raw socket, for [`FileStore::receive_staged_from`].
pub(crate) struct RawReceiver {
    socket: RawSocket,
    /// The source's address and the file's name, for errors.
    addr: String,
    name: String,
    /// Bytes announced by the source, and still to come.
    total: u64,
    left: u64,
    buf: Vec<u8>,
    limiter: Option<Arc<Mutex<TokenBucket>>>,
    /// Largest read between two waits of the limiter.
    piece: u64,
    failpoints: Arc<FailpointSet>,
    cancelled: Arc<AtomicBool>,
    /// Bytes received by the whole `pull_files` call, shared by its transfers (progress).
    received: Arc<AtomicU64>,
}

impl RawReceiver {
    pub(crate) fn new(
        socket: RawSocket,
        bytes: u64,
        addr: &str,
        name: &str,
        limiter: Option<Arc<Mutex<TokenBucket>>>,
        failpoints: Arc<FailpointSet>,
        cancelled: Arc<AtomicBool>,
    ) -> Self {
        let piece = match &limiter {
            Some(limiter) => (lock(limiter).rate_bytes_per_s() / RATE_LIMITED_READS_PER_S)
                .clamp(MIN_RATE_LIMITED_READ, CHUNK_BYTES as u64),
            None => CHUNK_BYTES as u64,
        };
        RawReceiver {
            socket,
            addr: addr.to_string(),
            name: name.to_string(),
            total: bytes,
            left: bytes,
            // Never larger than the file: small files do not pay for a 1 MiB buffer.
            buf: vec![0u8; min(bytes, CHUNK_BYTES as u64) as usize],
            limiter,
            piece,
            failpoints,
            cancelled,
            received: Arc::default(),
        }
    }

    /// Adds the bytes received to `received` (shared by the transfers of one call).
    pub(crate) fn counting_into(mut self, received: Arc<AtomicU64>) -> Self {
        self.received = received;
        self
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn interrupted(&self) -> ShardStoreError {
        ShardStoreError::protocol(format!("transfer of file {} was interrupted", self.name))
    }

    /// The connection broke, or the source stopped sending.
    fn broken(&self, received: u64, why: impl std::fmt::Display) -> ShardStoreError {
        if self.is_cancelled() {
            return self.interrupted();
        }
        ShardStoreError::Unavailable {
            addr: self.addr.clone(),
            message: format!(
                "cannot pull file {} from this move source: {why} after {received} of {} bytes",
                self.name, self.total
            ),
        }
    }

    /// Sleeps `wait`, in short steps so that a cancelled pull ends promptly.
    fn sleep(&self, wait: Duration) -> Result<()> {
        let until = Instant::now() + wait;
        loop {
            if self.is_cancelled() {
                return Err(self.interrupted());
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(min(until - now, CANCEL_CHECK));
        }
    }
}

impl PullSource for RawReceiver {
    fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        if self.left == 0 {
            return Ok(None);
        }
        if self.is_cancelled() {
            return Err(self.interrupted());
        }
        let want = min(min(self.left, self.piece), self.buf.len() as u64) as usize;
        let received = self.total - self.left;
        // Fill the chunk, so that the file is written in large writes.
        let mut filled = 0;
        while filled < want {
            match self.socket.read(&mut self.buf[filled..want]) {
                Ok(0) => return Err(self.broken(received + filled as u64, "the connection closed")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    let why = format!("nothing arrived for {} s", IO_TIMEOUT.as_secs());
                    return Err(self.broken(received + filled as u64, why));
                }
                Err(e) => return Err(self.broken(received + filled as u64, e)),
            }
        }
        self.left -= filled as u64;
        self.received.fetch_add(filled as u64, Ordering::Relaxed);
        if let Some(limiter) = &self.limiter {
            let wait = lock(limiter).debit(filled, Instant::now());
            if let Some(wait) = wait {
                self.sleep(wait)?;
            }
        }
        let chunk = &mut self.buf[..filled];
        if self.failpoints.fire_once(FAILPOINT_PULL_CORRUPT_ONCE) {
            warn!(
                name = self.name,
                "failpoint {FAILPOINT_PULL_CORRUPT_ONCE}: flipping a byte"
            );
            if let Some(first) = chunk.first_mut() {
                *first ^= 0xff;
            }
        }
        Ok(Some(chunk))
    }
}

/// Ends a raw transfer whose pull was dropped (cancelled, or another file of the call
/// failed): the receiving thread sees the flag, or the socket shut down under its blocking
/// read, and removes its part file.
pub(crate) struct CancelOnDrop {
    socket: std::net::TcpStream,
    cancelled: Arc<AtomicBool>,
    armed: bool,
}

impl CancelOnDrop {
    /// For the transfer on `socket` (a second handle is kept to shut it down).
    pub(crate) fn new(socket: &RawSocket) -> Result<Self> {
        let socket = socket.tcp().try_clone().map_err(|e| {
            ShardStoreError::internal(format!("cannot set up a raw transfer socket: {e}"))
        })?;
        Ok(CancelOnDrop {
            socket,
            cancelled: Arc::new(AtomicBool::new(false)),
            armed: true,
        })
    }

    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancelled)
    }

    /// The transfer ended by itself: nothing to cancel.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.cancelled.store(true, Ordering::SeqCst);
            let _ = self.socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Both sides.
// ---------------------------------------------------------------------------------------

enum SocketTimeout {
    Read,
    Write,
}

/// The socket of a tokio stream as a blocking one, for a transfer thread.
fn blocking_socket(stream: TcpStream, which: SocketTimeout) -> io::Result<std::net::TcpStream> {
    let socket = stream.into_std()?;
    socket.set_nonblocking(false)?;
    match which {
        SocketTimeout::Read => socket.set_read_timeout(Some(IO_TIMEOUT))?,
        SocketTimeout::Write => socket.set_write_timeout(Some(IO_TIMEOUT))?,
    }
    Ok(socket)
}

/// Runs `f` on a new thread and returns a receiver of its result (closed without a value if
/// it panicked). Transfer threads are threads of their own rather than tokio's blocking pool
/// because they lower their CPU priority, which an unprivileged process cannot raise again:
/// a pool thread would keep the low priority for whatever blocking work it runs next.
pub(crate) fn spawn_transfer_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<oneshot::Receiver<T>> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // The receiver is gone if the pull was cancelled: the result is not needed.
            let _ = tx.send(f());
        })?;
    Ok(rx)
}

/// Lowers the CPU priority of the calling thread (not of the process) to nice
/// [`TRANSFER_NICE`], or keeps it if it is lower already.
///
/// A move is bulk work that may take as long as it needs, while a query on the same worker
/// waits for every millisecond of CPU it does not get: on a small machine, the threads moving
/// a shard at full speed otherwise take a core each from the queries (point queries ran 3x
/// slower during a move on two cores). At nice 19 the scheduler gives a query thread about
/// seventy times the CPU share of a transfer thread when both want it (nice 10, ten times,
/// still left reads 1.7x slower during a rebalance), and wakes it ahead of them; when the
/// worker is idle, the transfer still gets all the CPU it can use. On Linux,
/// `setpriority(PRIO_PROCESS, tid)` sets the nice value of one thread; elsewhere it would be
/// the whole process's, so this does nothing there. Only a hint: a failure is logged.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let tid = Some(rustix::thread::gettid());
        let result = getpriority_process(tid).and_then(|current| {
            if current < TRANSFER_NICE {
                setpriority_process(tid, TRANSFER_NICE)
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            debug!(error = %e, "cannot lower the priority of a transfer thread");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
