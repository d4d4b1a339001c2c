// Package load measures the ingest edge: a closed-loop HTTP/1.1 load
// generator over many keep-alive loopback connections, a bare fasthttp
// baseline that only parses the same JSON and answers 202, and the real
// edge producing durably (acks=all) to an in-process kfake broker. It backs
// `streamtools bench ingest`; both servers face the same generator in the
// same run so that the ratio, not the absolute figure, is what counts.
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load describes one measurement.
type Load struct {
	Addr     string        // host:port of the server
	Path     string        // request path, e.g. /test-access-key
	Bodies   [][]byte      // request bodies, used round-robin per connection
	Conns    int           // concurrent keep-alive connections
	Duration time.Duration // measuring time (after Warmup)
	Warmup   time.Duration // requests sent but not counted
	Max      int64         // stop after this many counted requests (0: no bound)
}

// Result is what a measurement saw.
type Result struct {
	Accepted int64         // 202 answers counted
	Other    map[int]int64 // other statuses
	Elapsed  time.Duration
	CPU      time.Duration // user+system CPU time of the whole process while measuring
}

// CPUPerPostback is the process CPU time per accepted postback: load
// generator, server and (for the edge) producer and broker together.
func (r Result) CPUPerPostback() time.Duration {
	if r.Accepted == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Accepted)
}

// PerSecond is the accepted postbacks per second.
func (r Result) PerSecond() float64 { return float64(r.Accepted) / r.Elapsed.Seconds() }

// Run drives the load: each connection sends a request, reads the answer,
// and sends the next (closed loop), so the figure is the server's capacity
// at Conns concurrent senders.
func Run(ctx context.Context, l Load) (Result, error) {
	if l.Conns < 1 || len(l.Bodies) == 0 {
		return Result{}, errors.New("load: Conns and Bodies must not be empty")
	}
	reqs := make([][]byte, len(l.Bodies))
	for i, b := range l.Bodies {
		reqs[i] = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			l.Path, l.Addr, len(b), b)
	}
	var (
		counting atomic.Bool
		stop     atomic.Bool
		accepted atomic.Int64
		mu       sync.Mutex
		other    = map[int]int64{}
		firstErr error
		wg       sync.WaitGroup
	)
	conns := make([]net.Conn, 0, l.Conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range l.Conns {
		c, err := net.Dial("tcp", l.Addr)
		if err != nil {
			return Result{}, fmt.Errorf("load: dialing %s: %w", l.Addr, err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		wg.Go(func() {
			br := bufio.NewReaderSize(c, 4096)
			local := map[int]int64{}
			defer func() {
				mu.Lock()
				for k, v := range local {
					other[k] += v
				}
				mu.Unlock()
			}()
			for n := i; !stop.Load(); n++ {
				if _, err := c.Write(reqs[n%len(reqs)]); err != nil {
					if !stop.Load() {
						mu.Lock()
						firstErr = cmpErr(firstErr, fmt.Errorf("load: writing: %w", err))
						mu.Unlock()
					}
					return
				}
				code, err := readResponse(br)
				if err != nil {
					if !stop.Load() {
						mu.Lock()
						firstErr = cmpErr(firstErr, fmt.Errorf("load: reading: %w", err))
						mu.Unlock()
					}
					return
				}
				if !counting.Load() {
					continue
				}
				if code == 202 {
					if a := accepted.Add(1); l.Max > 0 && a >= l.Max {
						stop.Store(true)
					}
				} else {
					local[code]++
				}
			}
		})
	}
	sleep := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	sleep(l.Warmup)
	start := time.Now()
	cpu0 := processCPU()
	counting.Store(true)
	deadline := time.NewTimer(l.Duration)
	tick := time.NewTicker(5 * time.Millisecond)
wait:
	for {
		select {
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick.C:
			if stop.Load() {
				break wait
			}
		}
	}
	deadline.Stop()
	tick.Stop()
	counting.Store(false)
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	got := accepted.Load()
	stop.Store(true)
	for _, c := range conns {
		c.SetDeadline(time.Now()) // unblock readers
	}
	wg.Wait()
	res := Result{Accepted: got, Other: other, Elapsed: elapsed, CPU: cpu}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

var contentLength = []byte("content-length:")

// readResponse reads one HTTP/1.1 response with a Content-Length body and
// returns its status code.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("short status line %q", line)
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("status line %q: %w", line, err)
	}
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > len(contentLength) && bytes.EqualFold(h[:len(contentLength)], contentLength) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(h[len(contentLength):]))); err != nil {
				return 0, fmt.Errorf("content-length %q: %w", h, err)
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return 0, err
	}
	return code, nil
}

// processCPU returns the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
