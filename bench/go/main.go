// Command overhead runs one workload under one Go tracer configuration and prints the result as
// one JSON line, for comparison with flight-recorder's tokio overhead benchmark.
//
//	overhead -workload spawn|yield|pingpong|http -config go-none|go-trace|go-flight [-size small|large] [-trace-dir DIR] [-addr ADDR]
//
// The sizes are the tokio side's (bench/compare): small (the default) starts 100,000 goroutines
// at once, yields 100 goroutines × 5,000 times and runs 1,000 ping-pong pairs × 200 round trips;
// large starts 3,000,000 goroutines in batches of 1,000, yields 1,000 goroutines × 10,000 times
// and runs 1,000 pairs × 4,000 round trips.
//
// The program runs with GOMAXPROCS=2 (the tokio side's two workers) unless the GOMAXPROCS
// environment variable says otherwise.
//
// For spawn, yield and pingpong the tracer starts first, then one goroutine is started and joined
// as a warm-up, then the workload is timed; the tracer stops after the timed region. The output is
//
//	{"workload":"spawn","config":"go-flight","seconds":0.1234,"trace_bytes":123456,"snapshot_seconds":0.0123}
//
// trace_bytes is the size of the trace file (go-trace) or of the flight recorder's window as
// written by WriteTo (go-flight), and 0 for go-none; snapshot_seconds is the time WriteTo took
// (go-flight only, else 0); cpu_seconds is the CPU time (user and system, all threads) the process
// used over the same region as seconds.
//
// For http the tracer starts, a server listens on -addr (default 127.0.0.1:0) and prints
//
//	{"listening":"127.0.0.1:PORT"}
//
// then serves GET / until standard input reaches end of file, stops the tracer and prints the
// same result line as the other workloads, with seconds the time it served.
//
// Errors go to standard error, and the exit status is 1.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/trace"
	"sync"
	"syscall"
	"time"
)

// sizes is the amount of work of each micro workload.
type sizes struct {
	spawnTasks    int
	spawnBatch    int // goroutines started before they are waited for, batch after batch
	yieldTasks    int
	yieldsPerTask int
	pingPongPairs int
	pingPongTrips int
}

var (
	small = sizes{spawnTasks: 100_000, spawnBatch: 100_000, yieldTasks: 100, yieldsPerTask: 5_000, pingPongPairs: 1_000, pingPongTrips: 200}
	large = sizes{spawnTasks: 3_000_000, spawnBatch: 1_000, yieldTasks: 1_000, yieldsPerTask: 10_000, pingPongPairs: 1_000, pingPongTrips: 4_000}
)

// result is the JSON line a run prints at the end.
type result struct {
	Workload        string  `json:"workload"`
	Config          string  `json:"config"`
	Seconds         float64 `json:"seconds"`
	TraceBytes      int64   `json:"trace_bytes"`
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	CPUSeconds      float64 `json:"cpu_seconds"`
}

// cleanups run before the program exits, on success and on error.
var cleanups []func()

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "overhead: "+format+"\n", args...)
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(1)
}

func main() {
	workload := flag.String("workload", "", "spawn, yield, pingpong or http")
	config := flag.String("config", "", "go-none, go-trace or go-flight")
	traceDir := flag.String("trace-dir", os.TempDir(), "folder for go-trace's trace file (removed at exit)")
	addr := flag.String("addr", "127.0.0.1:0", "address the http workload listens on")
	size := flag.String("size", "small", "small or large")
	flag.Parse()
	if flag.NArg() != 0 {
		fail("unexpected arguments: %v", flag.Args())
	}
	var sz sizes
	switch *size {
	case "small":
		sz = small
	case "large":
		sz = large
	default:
		fail("unknown -size %q (want small or large)", *size)
	}

	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}

	var run func()
	switch *workload {
	case "spawn":
		run = func() { spawnHeavy(sz) }
	case "yield":
		run = func() { yieldHeavy(sz) }
	case "pingpong":
		run = func() { pingPong(sz) }
	case "http":
	default:
		fail("unknown -workload %q (want spawn, yield, pingpong or http)", *workload)
	}

	t, err := startTracer(*config, *traceDir)
	if err != nil {
		fail("%v", err)
	}

	var seconds float64
	cpuStart := cpuSeconds()
	if run != nil {
		warmUp()
		start := time.Now()
		run()
		seconds = time.Since(start).Seconds()
	} else {
		seconds, err = serveHTTP(*addr)
		if err != nil {
			fail("http: %v", err)
		}
	}

	cpu := cpuSeconds() - cpuStart

	traceBytes, snapshotSeconds, err := t.stop()
	if err != nil {
		fail("%v", err)
	}
	line, err := json.Marshal(result{
		Workload:        *workload,
		Config:          *config,
		Seconds:         seconds,
		TraceBytes:      traceBytes,
		SnapshotSeconds: snapshotSeconds,
		CPUSeconds:      cpu,
	})
	if err != nil {
		fail("%v", err)
	}
	if _, err := fmt.Fprintf(os.Stdout, "%s\n", line); err != nil {
		fail("writing the result: %v", err)
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

// cpuSeconds is the user and system CPU time the process has used, all threads together.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// tracer is one running tracer configuration.
type tracer struct {
	config string
	file   *os.File              // go-trace
	flight *trace.FlightRecorder // go-flight
}

func startTracer(config, traceDir string) (*tracer, error) {
	t := &tracer{config: config}
	switch config {
	case "go-none":
	case "go-trace":
		f, err := os.CreateTemp(traceDir, "overhead-*.trace")
		if err != nil {
			return nil, fmt.Errorf("go-trace: %w", err)
		}
		name := f.Name()
		cleanups = append(cleanups, func() {
			f.Close()
			os.Remove(name)
		})
		if err := trace.Start(f); err != nil {
			return nil, fmt.Errorf("go-trace: trace.Start: %w", err)
		}
		t.file = f
	case "go-flight":
		fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{
			MinAge:   10 * time.Second,
			MaxBytes: 64 << 20,
		})
		if err := fr.Start(); err != nil {
			return nil, fmt.Errorf("go-flight: FlightRecorder.Start: %w", err)
		}
		t.flight = fr
	default:
		return nil, fmt.Errorf("unknown -config %q (want go-none, go-trace or go-flight)", config)
	}
	return t, nil
}

// stop stops the tracer and returns the bytes it produced and, for go-flight, the seconds the
// snapshot (WriteTo) took.
func (t *tracer) stop() (traceBytes int64, snapshotSeconds float64, err error) {
	switch t.config {
	case "go-trace":
		// Stop returns once all the trace's writes have completed.
		trace.Stop()
		info, err := t.file.Stat()
		if err != nil {
			return 0, 0, fmt.Errorf("go-trace: %w", err)
		}
		return info.Size(), 0, nil
	case "go-flight":
		var c byteCounter
		start := time.Now()
		n, err := t.flight.WriteTo(&c)
		snapshotSeconds = time.Since(start).Seconds()
		t.flight.Stop()
		if err != nil {
			return 0, 0, fmt.Errorf("go-flight: FlightRecorder.WriteTo: %w", err)
		}
		if n != c.n {
			return 0, 0, fmt.Errorf("go-flight: WriteTo reported %d bytes but wrote %d", n, c.n)
		}
		return c.n, snapshotSeconds, nil
	}
	return 0, 0, nil
}

// byteCounter is an io.Writer that only counts what it is given.
type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// warmUp starts and joins one goroutine.
func warmUp() {
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
}

// spawnHeavy starts goroutines that each store their index, a batch at a time, and waits for
// each batch before it starts the next.
func spawnHeavy(sz sizes) {
	slots := make([]int, sz.spawnBatch)
	for next := 0; next < sz.spawnTasks; next += sz.spawnBatch {
		batch := min(sz.spawnBatch, sz.spawnTasks-next)
		var wg sync.WaitGroup
		wg.Add(batch)
		for i := range batch {
			go func() {
				slots[i] = next + i
				wg.Done()
			}()
		}
		wg.Wait()
	}
	runtime.KeepAlive(slots)
}

// yieldHeavy starts goroutines that each yield, and waits for all of them.
func yieldHeavy(sz sizes) {
	var wg sync.WaitGroup
	wg.Add(sz.yieldTasks)
	for range sz.yieldTasks {
		go func() {
			defer wg.Done()
			for range sz.yieldsPerTask {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
}

// pingPong runs pairs of goroutines joined by two channels of capacity 1: ping sends n and waits
// for its echo, round trip after round trip, then closes its channel; pong echoes until that
// channel closes. It waits for every ping and pong.
func pingPong(sz sizes) {
	var wg sync.WaitGroup
	wg.Add(2 * sz.pingPongPairs)
	for range sz.pingPongPairs {
		toPong := make(chan int, 1)
		toPing := make(chan int, 1)
		go func() {
			defer wg.Done()
			for n := range toPong {
				toPing <- n
			}
		}()
		go func() {
			defer wg.Done()
			for n := range sz.pingPongTrips {
				toPong <- n
				if echo := <-toPing; echo != n {
					fail("pingpong: sent %d, echoed %d", n, echo)
				}
			}
			close(toPong)
		}()
	}
	wg.Wait()
}

// serveHTTP serves GET / on addr until standard input reaches end of file, and returns the
// seconds it served.
func serveHTTP(addr string) (float64, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "hello, world\n")
	})
	srv := &http.Server{Handler: mux}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	line, err := json.Marshal(struct {
		Listening string `json:"listening"`
	}{ln.Addr().String()})
	if err != nil {
		ln.Close()
		return 0, err
	}
	// os.Stdout is unbuffered: the line is out when Fprintf returns.
	if _, err := fmt.Fprintf(os.Stdout, "%s\n", line); err != nil {
		ln.Close()
		return 0, err
	}

	start := time.Now()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	stdin := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, os.Stdin)
		stdin <- err
	}()

	select {
	case err := <-served:
		return 0, fmt.Errorf("server stopped before end of input: %w", err)
	case err := <-stdin:
		seconds := time.Since(start).Seconds()
		if err != nil {
			srv.Close()
			return 0, fmt.Errorf("reading standard input: %w", err)
		}
		if err := srv.Close(); err != nil {
			return 0, err
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			return 0, err
		}
		return seconds, nil
	}
}
