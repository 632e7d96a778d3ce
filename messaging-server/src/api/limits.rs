//! Every request body of the API is bounded while it streams, so no request ties up more
//! memory or disk than the server allows: an upload (the ingestions, raw or multipart) at
//! `MAX_BODY_BYTES`, the JSON body of every other operation at the smaller
//! `MAX_JSON_BODY_BYTES`. A body whose `Content-Length` is over its limit answers 413 before
//! a byte of it is read; one without (chunked) is counted as it arrives, and reading stops
//! with 413 as soon as the count passes the limit: a multipart upload stops spooling to its
//! temporary file there. Raw uploads are counted by the import itself ([`super::ingest`]),
//! whose 413 says how far it got.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use poem::http::header;
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, ReadBuf};

use super::error::ApiError;
use super::validate::BodySchemas;

/// The body limits of the API, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `MAX_BODY_BYTES`: an upload.
    pub upload: u64,
    /// `MAX_JSON_BODY_BYTES`: the JSON body of any other operation.
    pub json: u64,
}

/// Bounds the body of every request to `endpoint` by the limit of its operation (found in
/// `schemas`), answering 413 in the API's error shape once it is passed.
pub fn limit_bodies<E: Endpoint + 'static>(
    endpoint: E,
    schemas: Arc<BodySchemas>,
    limits: BodyLimits,
) -> impl Endpoint<Output = Response> {
    endpoint.around(move |next, mut request: Request| {
        let schemas = schemas.clone();
        async move {
            let upload = schemas.takes_upload(request.method(), request.uri().path());
            let (limit, setting) = if upload {
                (limits.upload, "MAX_BODY_BYTES")
            } else {
                (limits.json, "MAX_JSON_BODY_BYTES")
            };
            let too_large = || ApiError::too_large_for(limit, setting).into_response();
            if declared_length(&request).is_some_and(|length| length > limit) {
                return Ok(too_large());
            }
            if upload && !is_multipart(&request) {
                return Ok(next.call(request).await?.into_response());
            }
            let over = Arc::new(AtomicBool::new(false));
            let body = request.take_body().into_async_read();
            request.set_body(Body::from_async_read(Counted {
                inner: body,
                read: 0,
                limit,
                over: over.clone(),
            }));
            let answer = match next.call(request).await {
                Ok(answer) => answer.into_response(),
                Err(error) => error.into_response(),
            };
            // Whatever the reader made of the cut body (a broken form, a truncated JSON), the
            // reason is its size.
            if over.load(Ordering::SeqCst) {
                return Ok(too_large());
            }
            Ok(answer)
        }
    })
}

/// The request's `Content-Length`, when it gives one.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .header(header::CONTENT_LENGTH)
        .and_then(|length| length.trim().parse().ok())
}

fn is_multipart(request: &Request) -> bool {
    request.header(header::CONTENT_TYPE).is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    })
}

/// A body reader that fails, and says so in `over`, once more than `limit` bytes came.
struct Counted<R> {
    inner: R,
    read: u64,
    limit: u64,
    over: Arc<AtomicBool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.over.load(Ordering::SeqCst) {
            return Poll::Ready(Err(over_limit(self.limit)));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.read += (buf.filled().len() - before) as u64;
            if self.read > self.limit {
                self.over.store(true, Ordering::SeqCst);
                buf.set_filled(before);
                return Poll::Ready(Err(over_limit(self.limit)));
            }
        }
        polled
    }
}

fn over_limit(limit: u64) -> io::Error {
    io::Error::other(format!("the body is over {limit} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_counted(body: &'static [u8], limit: u64) -> (io::Result<Vec<u8>>, bool) {
        let over = Arc::new(AtomicBool::new(false));
        let mut reader = Counted {
            inner: body,
            read: 0,
            limit,
            over: over.clone(),
        };
        let mut read = Vec::new();
        let result = reader.read_to_end(&mut read).await.map(|_| read);
        (result, over.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_body_up_to_the_limit_reads_whole_and_one_byte_more_fails() {
        let (read, over) = read_counted(b"12345", 5).await;
        assert_eq!(read.unwrap(), b"12345");
        assert!(!over);
        let (read, over) = read_counted(b"123456", 5).await;
        assert!(read.is_err());
        assert!(over);
    }
}
