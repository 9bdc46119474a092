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

/// Whether [`recorder_clock`] reads the timestamp counter, as the recorder's clock does where
/// the counter is invariant (set by [`init_recorder_clock`]).
static CLOCK_TSC: AtomicBool = AtomicBool::new(false);

/// Chooses the source of [`recorder_clock`] the way the recorder chooses its own: the timestamp
/// counter when the kernel reports it constant and non-stop, else `CLOCK_MONOTONIC`.
pub fn init_recorder_clock() -> &'static str {
    let tsc = cfg!(target_arch = "x86_64")
        && std::env::var_os("FLIGHT_RECORDER_CLOCK").is_none_or(|v| v != "monotonic")
        && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
            info.lines()
                .find(|line| line.starts_with("flags"))
                .is_some_and(|flags| {
                    let has = |w: &str| flags.split_whitespace().any(|f| f == w);
                    has("constant_tsc") && has("nonstop_tsc")
                })
        });
    CLOCK_TSC.store(tsc, Ordering::Relaxed);
    if tsc {
        "tsc"
    } else {
        "monotonic"
    }
}

/// One reading of the recorder's clock as its hot path takes it (`record::clock::now`, which is
/// crate-private): a relaxed load of the source flag, a branch, and `rdtsc` (or
/// `clock_gettime(CLOCK_MONOTONIC)`).
#[inline(always)]
pub fn recorder_clock() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if CLOCK_TSC.load(Ordering::Relaxed) {
        // SAFETY: rdtsc is available on every x86_64 processor and has no memory effects.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(not(unix))]
    {
        timestamp()
    }
}

/// A 95% interval: the median of `values` with a percentile bootstrap interval (4000
/// resamples, fixed seed, so a run's output is reproducible from its samples).
pub fn median_ci(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut medians: Vec<f64> = (0..4000)
        .map(|_| {
            median(
                (0..n)
                    .map(|_| values[(next() % n as u64) as usize])
                    .collect(),
            )
        })
        .collect();
    medians.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| medians[((medians.len() - 1) as f64 * q).round() as usize];
    (median(values.to_vec()), at(0.025), at(0.975))
}

/// A 95% interval: the mean of `values` with Student's t-interval.
pub fn mean_ci(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, mean, mean);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    // Two-sided 97.5% quantiles of t for 1..=30 degrees of freedom, then the normal one.
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let t = T.get(values.len() - 2).copied().unwrap_or(1.96);
    let half = t * (var / n).sqrt();
    (mean, mean - half, mean + half)
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
    http_load_counted(addr, connections, duration).0
}

/// As [`http_load`]; also returns the number of requests served over the whole run (the 200 ms
/// warm-up included), to relate the server's own counts (its task polls) to requests.
pub fn http_load_counted(addr: SocketAddr, connections: usize, duration: Duration) -> (f64, u64) {
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
    (count as f64 / elapsed, done.load(Ordering::Relaxed))
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
