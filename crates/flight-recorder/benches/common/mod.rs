//! Helpers shared by the benchmark binaries: each binary uses a part of them.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The value of the environment variable `name` as a number, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// A bare read of the CPU's timestamp counter (`rdtsc`; the wall clock on other processors):
/// what one event's cost is compared with.
#[inline(always)]
pub fn timestamp() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc is available on every x86_64 processor and has no memory effects.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }
}

/// 100 tasks that yield 5,000 times each, on the current runtime.
pub async fn yield_heavy() {
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..5_000 {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// 100 ping-pong pairs over `mpsc(1)` channels, 1,000 round trips each, on the current runtime.
pub async fn ping_pong() {
    let pairs: Vec<_> = (0..100)
        .map(|_| {
            let (to_pong, mut pong_rx) = tokio::sync::mpsc::channel::<u32>(1);
            let (to_ping, mut ping_rx) = tokio::sync::mpsc::channel::<u32>(1);
            let pong = tokio::spawn(async move {
                while let Some(n) = pong_rx.recv().await {
                    if to_ping.send(n).await.is_err() {
                        break;
                    }
                }
            });
            let ping = tokio::spawn(async move {
                for n in 0..1000 {
                    to_pong.send(n).await.unwrap();
                    ping_rx.recv().await.unwrap();
                }
            });
            (ping, pong)
        })
        .collect();
    for (ping, pong) in pairs {
        ping.await.unwrap();
        pong.await.unwrap();
    }
}

/// Requests per second from `connections` keep-alive HTTP/1.1 clients, each a thread doing
/// blocking request/response over loopback, for `duration`.
pub fn http_load(addr: SocketAddr, connections: usize, duration: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let stop = stop.clone();
            let done = done.clone();
            std::thread::spawn(move || -> io::Result<()> {
                let mut stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                let request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    stream.write_all(request)?;
                    read_response(&mut stream, &mut buf)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(duration);
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap().expect("client failed");
    }
    count as f64 / elapsed
}

/// Reads one response with a `content-length` body.
pub fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        filled += n;
        let text = &buf[..filled];
        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&text[..end]).unwrap_or("");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if filled >= end + 4 + length {
                return Ok(());
            }
        }
    }
}
