//! Reading and writing whole MRD messages on a byte stream.
//!
//! The read side buffers until [`message::check`] says a whole message is there, so a slow
//! sender never leaves a half-parsed message behind; the write side encodes into one buffer
//! and writes it at once.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::message::{self, DecodeError, Message};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("connection closed in the middle of a message ({0} bytes of it received)")]
    Truncated(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct MessageReader<R> {
    inner: R,
    buffer: BytesMut,
    limit: usize,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// `limit`: the largest message accepted, in bytes.
    pub fn new(inner: R, limit: usize) -> Self {
        MessageReader {
            inner,
            // One 320x320 float slice with its header fits without a reallocation.
            buffer: BytesMut::with_capacity(512 * 1024),
            limit,
        }
    }

    /// The stream, for what comes after the last message read (bytes already buffered
    /// beyond it are dropped).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next message; `Ok(None)` when the peer closed the stream between messages.
    pub async fn read(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            match message::decode(&self.buffer, self.limit) {
                Ok((msg, used)) => {
                    self.buffer.advance(used);
                    return Ok(Some(msg));
                }
                Err(DecodeError::Incomplete) => {}
                Err(e) => return Err(e.into()),
            }
            if self.inner.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated(self.buffer.len()))
                };
            }
        }
    }
}

pub struct MessageWriter<W> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> MessageWriter<W> {
    pub fn new(inner: W) -> Self {
        MessageWriter {
            inner,
            buffer: Vec::new(),
        }
    }

    pub async fn write(&mut self, msg: &Message) -> std::io::Result<()> {
        self.buffer.clear();
        msg.encode(&mut self.buffer);
        self.inner.write_all(&self.buffer).await?;
        self.inner.flush().await
    }

    /// The stream, to write raw bytes after the messages.
    pub fn into_inner(self) -> W {
        self.inner
    }

    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.inner.shutdown().await
    }
}
