//! 1,000 stack captures of threads busy with std and tokio calls: no crash, no hang, and none of
//! their calls sees an error.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flight_recorder::stack::{capture_thread_stack, register_current_thread, ThreadHandle};

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors, each owned by one File.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn a_thousand_captures_under_load() {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Arc<Mutex<Vec<ThreadHandle>>> = Arc::default();
    let work = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let register = {
        let handles = handles.clone();
        move || {
            let handle = register_current_thread().expect("register");
            handles.lock().unwrap().push(handle);
        }
    };

    // Sleepers: every sleep lasts at least what was asked (std retries nanosleep on EINTR).
    for _ in 0..2 {
        let (stop, work, register) = (stop.clone(), work.clone(), register.clone());
        threads.push(std::thread::spawn(move || {
            register();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                std::thread::sleep(Duration::from_millis(3));
                assert!(started.elapsed() >= Duration::from_millis(3));
                work.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Mutex contenders.
    let shared = Arc::new(Mutex::new(0u64));
    for _ in 0..2 {
        let (stop, work, register, shared) =
            (stop.clone(), work.clone(), register.clone(), shared.clone());
        threads.push(std::thread::spawn(move || {
            register();
            while !stop.load(Ordering::Relaxed) {
                let mut guard = shared.lock().unwrap();
                *guard += 1;
                std::thread::sleep(Duration::from_micros(200));
                drop(guard);
                work.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // A pipe: the writer sends numbered 8-byte messages, the reader checks them with read_exact.
    let (mut reader, mut writer) = pipe();
    {
        let (stop, register_writer) = (stop.clone(), register.clone());
        threads.push(std::thread::spawn(move || {
            register_writer();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                writer.write_all(&n.to_le_bytes()).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            // Closing the pipe ends the reader.
        }));
        let (work, register) = (work.clone(), register.clone());
        threads.push(std::thread::spawn(move || {
            register();
            let mut expected = 0u64;
            let mut buf = [0u8; 8];
            loop {
                match reader.read_exact(&mut buf) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => panic!("pipe read_exact: {e}"),
                }
                assert_eq!(u64::from_le_bytes(buf), expected);
                expected += 1;
                work.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // A tokio runtime with timers and a TCP echo over loopback.
    let runtime = {
        let register = register.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(register)
            .build()
            .unwrap()
    };
    let tokio_done = {
        let (stop, work) = (stop.clone(), work.clone());
        std::thread::spawn(move || {
            runtime.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let address = listener.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let mut buf = [0u8; 64];
                    loop {
                        let n = socket.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        socket.write_all(&buf[..n]).await.unwrap();
                    }
                });
                let timers = {
                    let (stop, work) = (stop.clone(), work.clone());
                    tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let started = tokio::time::Instant::now();
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            assert!(started.elapsed() >= Duration::from_millis(2));
                            work.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                };
                let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let message = [n as u8; 32];
                    client.write_all(&message).await.unwrap();
                    let mut back = [0u8; 32];
                    client.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, message);
                    n += 1;
                    work.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                drop(client);
                server.await.unwrap();
                timers.await.unwrap();
            });
        })
    };

    // Wait for the 8 threads (2 sleepers, 2 mutex, 2 pipe, 2 workers) to register.
    let deadline = Instant::now() + Duration::from_secs(10);
    while handles.lock().unwrap().len() < 8 {
        assert!(Instant::now() < deadline, "threads did not register");
        std::thread::sleep(Duration::from_millis(5));
    }
    let targets = handles.lock().unwrap().clone();

    // Two capturers, 500 captures each, round robin.
    let started = Instant::now();
    let capturers: Vec<_> = (0..2)
        .map(|c| {
            let targets = targets.clone();
            std::thread::spawn(move || {
                let mut frames = 0usize;
                for i in 0..500 {
                    let target = &targets[(i + c) % targets.len()];
                    let stack =
                        capture_thread_stack(target, Instant::now() + Duration::from_secs(5))
                            .unwrap_or_else(|e| panic!("capture {i} of {}: {e}", target.tid()));
                    assert_eq!(stack.tid, target.tid());
                    frames += stack.frames.len();
                    // Spread the captures over a second or two, across the threads' calls.
                    if i.is_multiple_of(2) {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                }
                frames
            })
        })
        .collect();
    let frames: usize = capturers.into_iter().map(|c| c.join().unwrap()).sum();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    tokio_done.join().unwrap();
    eprintln!(
        "1000 captures in {elapsed:?} (with pauses), {:.1} frames on average, {} operations done meanwhile",
        frames as f64 / 1000.0,
        work.load(Ordering::Relaxed)
    );
    assert!(work.load(Ordering::Relaxed) > 0);
}
