//! What the daemon's tests share: a server on 127.0.0.1 with real ONNX Runtime models, and
//! a client that speaks MRD as a FIRE client does.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossdenoise_host::mrd::session::IMAGE_TYPE_MARK;
use crossdenoise_host::mrd::stats::Stats;
use crossdenoise_host::mrd::{DataType, Image, Message, MessageReader, MessageWriter, Meta};
use crossdenoise_host::{Host, HostConfig};
use ndarray::Array2;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::support;

pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    pub stats: Arc<Stats>,
}

impl Server {
    pub async fn start(config: HostConfig) -> Server {
        let host = tokio::task::spawn_blocking(move || Host::open(config).expect("host opens"))
            .await
            .unwrap();
        Server::serve(host).await
    }

    /// Serves `host` (e.g. [`Host::with_engines`] with stand-in engines) on a free port.
    pub async fn serve(host: Host) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = host.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(host.serve(listener, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
            stats,
        }
    }

    pub async fn shutdown(mut self) -> Arc<Stats> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the server stops")
            .unwrap();
        self.stats
    }
}

pub fn config(model: &Path) -> HostConfig {
    let mut c = HostConfig::serving(model);
    c.stats_interval_s = 0.0;
    c
}

pub fn model(dir: &Path, flags: &[&str]) -> PathBuf {
    support::test_model(dir, "model.onnx", flags)
}

pub fn image(plane: &Array2<f32>, index: u16) -> Image {
    let mut image = Image::from_plane(plane, DataType::F32);
    image.header.image_index = index;
    image.header.image_series_index = 1;
    let mut meta = Meta::new();
    meta.set("SequenceDescription", vec!["pdfs_tse".into()]);
    image.attributes = meta.to_xml();
    // As it reads back: the encoder writes the attribute length into the header.
    image.header.attribute_string_len = image.attributes.len() as u32;
    image
}

pub struct Client {
    pub reader: MessageReader<tokio::net::tcp::OwnedReadHalf>,
    pub writer: MessageWriter<tokio::net::tcp::OwnedWriteHalf>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, config: &str) -> Client {
        Self::connect_with_header(addr, config, "<ismrmrdHeader/>").await
    }

    /// Connects, names `config` and sends `header` as the MRD XML header.
    pub async fn connect_with_header(addr: SocketAddr, config: &str, header: &str) -> Client {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Client {
            reader: MessageReader::new(r, 1 << 28),
            writer: MessageWriter::new(w),
        };
        c.send(&Message::ConfigFile(config.into())).await;
        c.send(&Message::Header(header.into())).await;
        c
    }

    pub async fn send(&mut self, m: &Message) {
        self.writer.write(m).await.unwrap();
    }

    /// Every message until the server's close; asserts the connection then ends.
    pub async fn until_close(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), self.reader.read())
                .await
                .expect("an answer in time")
                .unwrap()
                .expect("close before the end of the stream");
            if m == Message::Close {
                break;
            }
            out.push(m);
        }
        assert_eq!(
            self.reader.read().await.unwrap(),
            None,
            "the server ends the connection"
        );
        // As a FIRE client does on close: its side closes too, which lets the server
        // close the socket.
        let _ = self.writer.shutdown().await;
        out
    }

    /// Sends `planes` as images numbered from 1, then a close; every message until the
    /// server's close.
    pub async fn answers_to(&mut self, planes: &[Array2<f32>]) -> Vec<Message> {
        for (i, p) in planes.iter().enumerate() {
            self.send(&Message::Image(image(p, i as u16 + 1))).await;
        }
        self.send(&Message::Close).await;
        self.until_close().await
    }
}

pub fn images(messages: &[Message]) -> Vec<&Image> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Image(i) => Some(i),
            _ => None,
        })
        .collect()
}

pub fn is_denoised(image: &Image) -> bool {
    Meta::parse(&image.attributes)
        .unwrap()
        .get("ImageType")
        .is_some_and(|v| v.iter().any(|t| t == IMAGE_TYPE_MARK))
}
