//! Connections that a handler can sever, to simulate an answer lost on the way back.
//!
//! HTTP handlers never see their socket, so the acceptor wraps every TCP stream with a
//! "severed" flag, registered by the peer's address. A handler that wants its request to go
//! unanswered flags its peer ([`ConnectionRegistry::sever`]) and returns; the stream then
//! refuses to write, the server closes the connection, and the client sees it close before
//! any byte of an answer.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The severed flags of open connections, by peer address.
#[derive(Clone, Default)]
pub(crate) struct ConnectionRegistry {
    open: Arc<Mutex<HashMap<SocketAddr, Arc<AtomicBool>>>>,
}

impl ConnectionRegistry {
    /// Makes the connection from `peer` close instead of answering; false if it is gone.
    pub fn sever(&self, peer: SocketAddr) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(&peer) {
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    fn register(&self, peer: SocketAddr) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.insert(peer, flag.clone());
        flag
    }

    /// Forgets `peer`'s flag, unless a newer connection from the same address replaced it.
    fn forget(&self, peer: SocketAddr, flag: &Arc<AtomicBool>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open
            .get(&peer)
            .is_some_and(|current| Arc::ptr_eq(current, flag))
        {
            open.remove(&peer);
        }
    }
}

/// A TCP acceptor whose connections can be severed through a [`ConnectionRegistry`].
pub(crate) struct SeverableAcceptor {
    listener: TcpListener,
    local_addr: LocalAddr,
    registry: ConnectionRegistry,
}

impl SeverableAcceptor {
    pub fn new(listener: TcpListener, registry: ConnectionRegistry) -> io::Result<Self> {
        let local_addr = LocalAddr(listener.local_addr()?.into());
        Ok(Self {
            listener,
            local_addr,
            registry,
        })
    }
}

impl Acceptor for SeverableAcceptor {
    type Io = SeverableStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local_addr.clone()]
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, peer) = self.listener.accept().await?;
        let severed = self.registry.register(peer);
        let stream = SeverableStream {
            inner: stream,
            peer,
            severed,
            registry: self.registry.clone(),
        };
        Ok((
            stream,
            self.local_addr.clone(),
            RemoteAddr(peer.into()),
            Scheme::HTTP,
        ))
    }
}

/// A TCP stream that fails every read and write once severed.
pub(crate) struct SeverableStream {
    inner: TcpStream,
    peer: SocketAddr,
    severed: Arc<AtomicBool>,
    registry: ConnectionRegistry,
}

impl SeverableStream {
    fn check(&self) -> io::Result<()> {
        if self.severed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection severed by fault injection",
            ))
        } else {
            Ok(())
        }
    }
}

impl Drop for SeverableStream {
    fn drop(&mut self) {
        self.registry.forget(self.peer, &self.severed);
    }
}

impl AsyncRead for SeverableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SeverableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
