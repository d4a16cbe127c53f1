//! HTTP/1.1 for the measured requests over plain `http://`, read in the request's own task, the
//! way the overhead benchmark's yardstick reads: one socket read, one timestamp, straight into
//! the fold. reqwest (over hyper) reads each socket in a connection task of its own and hands the
//! body over a channel to the request's task; under load, when streams end in waves, the second
//! hop waited behind other work, and end-to-end p99 grew by 10 to 30 ms against independent
//! servers (`scripts/bench_overhead.sh`). Here no hop exists.
//!
//! Where the kernel offers it (Linux `SO_TIMESTAMPNS`), each read is stamped with the instant
//! the kernel received its last segment, so a read that waited for the CPU still carries its
//! arrival time; elsewhere, or when the kernel gives none, the instant the read returned. The
//! kernel clock is the realtime one: only the age of a read (realtime now − kernel stamp, taken
//! back to back) is used, subtracted from the monotonic now, so a clock step can cost at most
//! that one read's stamp (an age outside 0..1 s falls back to the user-space instant).
//!
//! Connections are kept alive in a LIFO pool; a kept-alive connection the server closed under a
//! request is replaced once, as reqwest did. Chunked, `Content-Length` and close-delimited
//! bodies are read; anything else (TLS, proxies, HTTP/2) stays with reqwest.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The longest response head accepted.
const MAX_HEAD: usize = 64 << 10;
/// Bytes asked of each socket read.
const READ_SIZE: usize = 8 << 10;

/// How many reads were stamped by the kernel and how many in user space.
#[derive(Debug, Default)]
pub struct Stamps {
    /// Reads stamped with the kernel's receive time.
    pub kernel: AtomicU64,
    /// Reads stamped when they returned.
    pub user: AtomicU64,
}

impl Stamps {
    /// `kernel`, `user`, or `mixed`, for the result; `None` before any read.
    pub fn clock(&self) -> Option<&'static str> {
        match (
            self.kernel.load(Ordering::Relaxed),
            self.user.load(Ordering::Relaxed),
        ) {
            (0, 0) => None,
            (_, 0) => Some("kernel"),
            (0, _) => Some("user"),
            _ => Some("mixed"),
        }
    }
}

/// One endpoint's connections.
#[derive(Debug)]
pub struct Wire {
    host: String,
    port: u16,
    /// `host:port` as the Host header says it.
    authority: String,
    path: String,
    idle: Mutex<Vec<Conn>>,
    connect_timeout: Duration,
    /// Which clock stamped the reads.
    pub stamps: Stamps,
    /// The runtime's clock and the system's at creation: a kernel stamp's age is real time, so
    /// it is used only while the runtime's clock runs with the system's (not under a test's
    /// paused clock).
    origin: (Instant, std::time::Instant),
}

/// Why a request failed on the wire, before the fold judged the body.
#[derive(Debug)]
pub enum WireError {
    /// The TCP connection was refused.
    Refused(io::Error),
    /// The connection could not be opened (or not within the connect timeout).
    Connect(String),
    /// The connection broke, or closed early.
    Io(io::Error),
    /// The server's bytes are not HTTP/1.1.
    Malformed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Refused(e) => write!(f, "connection refused: {e}"),
            WireError::Connect(e) => write!(f, "cannot connect: {e}"),
            WireError::Io(e) => write!(f, "connection error: {e}"),
            WireError::Malformed(e) => write!(f, "not an HTTP/1.1 answer: {e}"),
        }
    }
}

impl Wire {
    /// The wire for `url` when it is plain `http://` and no proxy is configured, else `None`
    /// (reqwest serves it).
    pub fn for_url(url: &str, connect_timeout: Duration) -> Option<Wire> {
        let parsed = reqwest::Url::parse(url).ok()?;
        let proxied = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|p| !p.trim().is_empty()));
        // `LLM_BENCH_TRANSPORT=reqwest` keeps reqwest, to compare the two in one invocation.
        let chosen = std::env::var("LLM_BENCH_TRANSPORT").is_ok_and(|t| t == "reqwest");
        if parsed.scheme() != "http" || proxied || chosen || !parsed.username().is_empty() {
            return None;
        }
        let host = parsed.host_str()?.to_string();
        let port = parsed.port_or_known_default()?;
        let authority = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut path = parsed.path().to_string();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        Some(Wire {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            authority,
            path,
            idle: Mutex::new(Vec::new()),
            connect_timeout,
            stamps: Stamps::default(),
            origin: (Instant::now(), std::time::Instant::now()),
        })
    }

    /// The request's bytes: head and JSON body, for one write.
    pub fn request(&self, body: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 256);
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.authority.as_bytes());
        out.extend_from_slice(b"\r\ncontent-type: application/json\r\nuser-agent: llm-bench/");
        out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        for (name, value) in headers {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(format!("\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out
    }

    /// True while the runtime's clock keeps with the system's (within 1 ms).
    fn clock_is_real(&self) -> bool {
        let runtime = self.origin.0.elapsed();
        let system = self.origin.1.elapsed();
        runtime.abs_diff(system) < Duration::from_millis(1)
    }

    /// A kept-alive connection the server has not closed, if one is idle. A server may close
    /// after every answer without saying so (llama-server does); its FIN has usually arrived by
    /// the next request, so a one-byte non-blocking read tells, instead of a request written
    /// into a closed socket and sent again.
    pub fn take(&self) -> Option<Conn> {
        loop {
            let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            match conn.stream.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(conn),
                // Closed, reset, or bytes nobody asked for: not reusable.
                _ => continue,
            }
        }
    }

    /// Gives a connection whose last answer was read to its end back for the next request.
    pub fn put(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    /// A new connection, and how long opening it took.
    pub async fn connect(&self) -> Result<(Conn, Duration), WireError> {
        let start = Instant::now();
        let opened = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            WireError::Connect(format!("no connection within {:?}", self.connect_timeout))
        })?;
        let stream = opened.map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => WireError::Refused(e),
            _ => WireError::Connect(e.to_string()),
        })?;
        let _ = stream.set_nodelay(true);
        let kernel = stamp::enable(&stream);
        Ok((
            Conn {
                stream,
                kernel,
                buf: vec![0; READ_SIZE],
                start: 0,
                end: 0,
                last_at: Instant::now(),
            },
            start.elapsed(),
        ))
    }

    /// Opens `n` connections into the pool (before the load, outside every measurement).
    pub async fn preconnect(&self, n: usize) -> usize {
        let opened = futures_util::future::join_all((0..n).map(|_| self.connect())).await;
        let mut count = 0;
        for (conn, _) in opened.into_iter().flatten() {
            self.put(conn);
            count += 1;
        }
        count
    }
}

/// One connection with what was read from it and not yet used.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    kernel: bool,
    /// Allocated (and zeroed) once, grown only for a head that does not fit: reads fill
    /// `end..`, `start..end` is what was read and not yet used.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// When the latest read's bytes arrived: bytes it carried past what was asked for (the
    /// first body bytes in the head's read) arrived then, not when they are used.
    last_at: Instant,
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked(Chunk),
    Length(u64),
    Close,
}

/// Where a chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// A response head, and the body's state.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    framing: Framing,
    keep_alive: bool,
}

impl Response {
    /// True once the body was read to its end.
    pub fn complete(&self) -> bool {
        matches!(
            self.framing,
            Framing::Chunked(Chunk::Done) | Framing::Length(0)
        )
    }

    /// True when the connection can serve another request once the body is read.
    pub fn reusable(&self) -> bool {
        self.keep_alive && self.complete()
    }
}

impl Conn {
    /// Writes a request.
    pub async fn write(&mut self, request: &[u8]) -> io::Result<()> {
        self.start = 0;
        self.end = 0;
        self.stream.write_all(request).await
    }

    /// One socket read appended to the buffer, with its arrival instant; 0 at EOF.
    async fn read(&mut self, wire: &Wire) -> io::Result<(usize, Instant)> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.len() - self.end < READ_SIZE / 4 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let kernel = self.kernel && wire.clock_is_real();
        let (n, at) = stamp::read(&self.stream, &mut self.buf[self.end..], kernel).await?;
        self.end += n;
        let counter = if at.1 {
            &wire.stamps.kernel
        } else {
            &wire.stamps.user
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.last_at = at.0;
        Ok((n, at.0))
    }

    /// Reads the response head (EOF before any byte is `UnexpectedEof`).
    pub async fn head(&mut self, wire: &Wire) -> Result<Response, WireError> {
        loop {
            let data = &self.buf[self.start..self.end];
            if let Some(end) = find(data, b"\r\n\r\n") {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut parsed = httparse::Response::new(&mut headers);
                parsed
                    .parse(&data[..end + 4])
                    .map_err(|e| WireError::Malformed(e.to_string()))?;
                let status = parsed.code.unwrap_or(0);
                let header = |name: &str| {
                    parsed
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
                };
                let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
                let close = header("connection").is_some_and(|v| v.contains("close"))
                    || parsed.version == Some(0);
                let framing = match (chunked, length) {
                    (true, _) => Framing::Chunked(Chunk::Size),
                    (false, Some(n)) => Framing::Length(n),
                    (false, None) => Framing::Close,
                };
                self.start += end + 4;
                // 1xx answers (100 Continue) come before the real one.
                if (100..200).contains(&status) {
                    continue;
                }
                return Ok(Response {
                    status,
                    keep_alive: !close && framing != Framing::Close,
                    framing,
                });
            }
            if data.len() > MAX_HEAD {
                return Err(WireError::Malformed(format!(
                    "a response head longer than {MAX_HEAD} bytes"
                )));
            }
            let (n, _) = self.read(wire).await.map_err(WireError::Io)?;
            if n == 0 {
                return Err(WireError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before message completed",
                )));
            }
        }
    }

    /// The body's next bytes, as ranges for [`Conn::bytes`] (valid until the next call), and
    /// when they arrived; `Ok(None)` at its end.
    pub async fn body(
        &mut self,
        response: &mut Response,
        wire: &Wire,
        out: &mut Vec<std::ops::Range<usize>>,
    ) -> Result<Option<Instant>, WireError> {
        out.clear();
        // What an earlier read left (the head's read often carries the first bytes).
        let mut at = self.last_at;
        loop {
            self.decode(response, out)?;
            if !out.is_empty() {
                return Ok(Some(at));
            }
            if response.complete() {
                return Ok(None);
            }
            let (n, stamped) = self.read(wire).await.map_err(WireError::Io)?;
            at = stamped;
            if n == 0 {
                return match response.framing {
                    Framing::Close => {
                        response.framing = Framing::Length(0);
                        response.keep_alive = false;
                        Ok(None)
                    }
                    _ => Err(WireError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before the end of the body",
                    ))),
                };
            }
        }
    }

    fn decode(
        &mut self,
        response: &mut Response,
        out: &mut Vec<std::ops::Range<usize>>,
    ) -> Result<(), WireError> {
        decode_buffer(&self.buf[..self.end], &mut self.start, response, out)
    }

    /// Body bytes [`Conn::body`] pointed at.
    pub fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }
}

/// The ranges of body bytes in `buf` from `start`, as far as the framing allows, appended to
/// `out` (pure: the state is the response's framing and `start`). Nothing is copied: a read
/// holding several chunks gives one range per chunk.
fn decode_buffer(
    buf: &[u8],
    start: &mut usize,
    response: &mut Response,
    out: &mut Vec<std::ops::Range<usize>>,
) -> Result<(), WireError> {
    loop {
        let data = &buf[*start..];
        match &mut response.framing {
            Framing::Close => {
                if !data.is_empty() {
                    out.push(*start..buf.len());
                }
                *start = buf.len();
                return Ok(());
            }
            Framing::Length(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                if n > 0 {
                    out.push(*start..*start + n);
                }
                *left -= n as u64;
                *start += n;
                return Ok(());
            }
            Framing::Chunked(state) => match *state {
                Chunk::Done => return Ok(()),
                Chunk::Size | Chunk::Trailer => {
                    let Some(line_end) = find(data, b"\r\n") else {
                        if data.len() > 4096 {
                            return Err(WireError::Malformed(
                                "a chunk size line longer than 4 KiB".into(),
                            ));
                        }
                        return Ok(());
                    };
                    let line = &data[..line_end];
                    *start += line_end + 2;
                    if *state == Chunk::Trailer {
                        if line.is_empty() {
                            *state = Chunk::Done;
                        }
                        continue;
                    }
                    let hex = line.split(|b| *b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                        .ok_or_else(|| {
                            WireError::Malformed(format!(
                                "chunk size {:?}",
                                String::from_utf8_lossy(&line[..line.len().min(32)])
                            ))
                        })?;
                    *state = if size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if data.is_empty() {
                        return Ok(());
                    }
                    let n = left.min(data.len() as u64) as usize;
                    out.push(*start..*start + n);
                    *start += n;
                    *state = if left == n as u64 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                }
                Chunk::DataEnd => {
                    if data.len() < 2 {
                        return Ok(());
                    }
                    if &data[..2] != b"\r\n" {
                        return Err(WireError::Malformed("no CRLF after a chunk".into()));
                    }
                    *start += 2;
                    *state = Chunk::Size;
                }
            },
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Receive timestamps: the kernel's where the platform has them.
mod stamp {
    use std::io;

    use tokio::io::Interest;
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    /// Asks the kernel to stamp received data; false where it cannot.
    #[cfg(target_os = "linux")]
    pub fn enable(stream: &TcpStream) -> bool {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor, and a pointer to a c_int that outlives the call.
        let set = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        set == 0
    }

    #[cfg(not(target_os = "linux"))]
    pub fn enable(_: &TcpStream) -> bool {
        false
    }

    /// One read into `buf`: the bytes read, their arrival instant and whether the kernel
    /// stamped it.
    pub async fn read(
        stream: &TcpStream,
        buf: &mut [u8],
        kernel: bool,
    ) -> io::Result<(usize, (Instant, bool))> {
        loop {
            stream.readable().await?;
            let mut drained = None;
            let read = stream.try_io(Interest::READABLE, || {
                let len = buf.len();
                let (n, age) = recv(stream, buf, kernel)?;
                // A read that did not fill the buffer drained the socket: epoll and kqueue are
                // edge-triggered, as tokio's own `poll_read` assumes. Saying WouldBlock makes
                // tokio clear the readiness, so the next read waits for new bytes instead of
                // costing a `recvmsg` that only returns EAGAIN: one system call per chunk
                // instead of two, as the yardstick's reads make.
                if n > 0 && n < len && !cfg!(windows) {
                    drained = Some((n, age));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok((n, age))
            });
            let (n, age) = match read {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match drained {
                    Some(got) => got,
                    None => continue,
                },
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            return Ok(match age {
                Some(age) => (n, (now.checked_sub(age).unwrap_or(now), true)),
                None => (n, (now, false)),
            });
        }
    }

    /// `recvmsg` with the kernel's receive time: the bytes read and how long ago the last of
    /// them arrived (`None` without a usable stamp).
    #[cfg(target_os = "linux")]
    fn recv(
        stream: &TcpStream,
        buf: &mut [u8],
        kernel: bool,
    ) -> io::Result<(usize, Option<std::time::Duration>)> {
        use std::os::fd::AsRawFd;
        if !kernel {
            return plain(stream, buf);
        }
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one SCM_TIMESTAMPNS message, 8-byte aligned as cmsghdr needs.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain data; every pointer set below is valid for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: a valid socket, and msg points to the iovec and control buffer above.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut received = None;
        // SAFETY: msg was filled by recvmsg; the CMSG macros walk its control buffer.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: cmsg is non-null and within the control buffer.
            let header = unsafe { &*cmsg };
            if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_TIMESTAMPNS {
                // SAFETY: an SCM_TIMESTAMPNS message carries one timespec, maybe unaligned.
                received = Some(unsafe {
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>())
                });
            }
            // SAFETY: as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        let age = received.and_then(|at| {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid pointer to a timespec.
            if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0 {
                return None;
            }
            let ns = |t: libc::timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
            let age = ns(now) - ns(at);
            // A clock step between the stamp and now shows as an age that cannot be.
            (0..1_000_000_000)
                .contains(&age)
                .then(|| std::time::Duration::from_nanos(age as u64))
        });
        Ok((n as usize, age))
    }

    #[cfg(not(target_os = "linux"))]
    fn recv(
        stream: &TcpStream,
        buf: &mut [u8],
        _: bool,
    ) -> io::Result<(usize, Option<std::time::Duration>)> {
        plain(stream, buf)
    }

    fn plain(
        stream: &TcpStream,
        buf: &mut [u8],
    ) -> io::Result<(usize, Option<std::time::Duration>)> {
        stream.try_read(buf).map(|n| (n, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(framing: Framing, wire: &[&[u8]]) -> Result<(Vec<u8>, bool), WireError> {
        let mut response = Response {
            status: 200,
            framing,
            keep_alive: true,
        };
        let (mut buf, mut start, mut ranges, mut out) = (Vec::new(), 0, Vec::new(), Vec::new());
        for piece in wire {
            buf.extend_from_slice(piece);
            ranges.clear();
            decode_buffer(&buf, &mut start, &mut response, &mut ranges)?;
            for r in &ranges {
                out.extend_from_slice(&buf[r.clone()]);
            }
        }
        Ok((out, response.complete()))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 1..body.len() {
            let (a, b) = body.split_at(split);
            let (got, complete) = decoded(Framing::Chunked(Chunk::Size), &[a, b]).unwrap();
            assert_eq!(got, b"hello world", "split at {split}");
            assert!(complete, "split at {split}");
        }
        let (got, complete) = decoded(Framing::Length(4), &[b"ab", b"cdEXTRA"]).unwrap();
        assert_eq!((got.as_slice(), complete), (&b"abcd"[..], true));
        assert!(decoded(Framing::Chunked(Chunk::Size), &[b"zz\r\n"]).is_err());
        assert!(decoded(Framing::Chunked(Chunk::Size), &[b"1\r\naXY"]).is_err());
    }

    #[test]
    fn plain_http_urls_get_a_wire_and_others_do_not() {
        let w = Wire::for_url(
            "http://127.0.0.1:8000/v1/chat/completions?x=1",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            (w.authority.as_str(), w.path.as_str()),
            ("127.0.0.1:8000", "/v1/chat/completions?x=1")
        );
        let head = String::from_utf8(w.request(b"{}", &[("authorization", "Bearer k")])).unwrap();
        assert!(
            head.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n"),
            "{head}"
        );
        assert!(
            head.ends_with("authorization: Bearer k\r\ncontent-length: 2\r\n\r\n{}"),
            "{head}"
        );
        assert_eq!(
            Wire::for_url("http://localhost/api/chat", Duration::from_secs(1))
                .unwrap()
                .port,
            80
        );
        assert!(Wire::for_url("https://h/v1", Duration::from_secs(1)).is_none());
        assert!(Wire::for_url("http://u:p@h/v1", Duration::from_secs(1)).is_none());
    }
}
