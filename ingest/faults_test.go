package ingest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// median returns the median of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// TestSlowloris opens 1,000 connections that send part of a request's
// headers and stall (half of them trickle a byte now and then): the read
// timeout closes every one, while a normal client's postbacks keep
// succeeding. Latencies are logged, not asserted.
func TestSlowloris(t *testing.T) {
	const readTimeout = 2 * time.Second
	e := startEdge(t, func(c *Config) { c.ReadTimeout = readTimeout })
	const n = 1000

	// The normal client runs until the attack is over.
	stop := make(chan struct{})
	var (
		latencies []time.Duration
		failures  []string
		clientWG  sync.WaitGroup
	)
	clientWG.Go(func() {
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			resp, err := client.Post(e.url+"/"+testKey, "application/json", strings.NewReader(exampleBody))
			if err != nil {
				failures = append(failures, err.Error())
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			latencies = append(latencies, time.Since(start))
			if resp.StatusCode != 202 {
				failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, b))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	type outcome struct {
		closedAfter time.Duration
		status      int    // of an answer before the close, if any
		err         string // the connection was not closed by the server
	}
	outcomes := make([]outcome, n)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		conn, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "POST /%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: ", testKey); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if i%2 == 1 {
			wg.Go(func() { // trickle: one byte every 300 ms while the server listens
				for {
					time.Sleep(300 * time.Millisecond)
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			})
		}
		wg.Go(func() {
			o := &outcomes[i]
			// Far above the read timeout: a connection still open then
			// was not closed by the server.
			if err := conn.SetReadDeadline(time.Now().Add(readTimeout + 15*time.Second)); err != nil {
				o.err = err.Error()
				return
			}
			br := bufio.NewReader(conn)
			if _, err := br.Peek(1); err == nil {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					o.err = "reading the answer: " + err.Error()
					return
				}
				o.status = resp.StatusCode
				resp.Body.Close()
			}
			_, err := io.Copy(io.Discard, br)
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				o.err = "still open"
				return
			}
			o.closedAfter = time.Since(began)
		})
	}
	t.Logf("%d slow connections open after %v", n, time.Since(began).Round(time.Millisecond))
	wg.Wait()
	close(stop)
	clientWG.Wait()

	statuses := map[int]int{}
	var closed []time.Duration
	for i, o := range outcomes {
		if o.err != "" {
			t.Errorf("slow connection %d: %s", i, o.err)
			continue
		}
		statuses[o.status]++
		closed = append(closed, o.closedAfter)
	}
	if len(closed) > 0 {
		t.Logf("slow connections closed by the server: %d, median %v, last %v after the first was opened; answers before the close: %v (0: none)",
			len(closed), median(closed), slices.Max(closed), statuses)
	}
	for code := range statuses {
		if code != 0 && code != 408 {
			t.Errorf("a slow connection got %d, want 408 or no answer", code)
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d of the normal client's %d requests failed during the attack, first: %s", len(failures), len(latencies), failures[0])
	}
	if len(latencies) < 10 {
		t.Fatalf("the normal client made only %d requests", len(latencies))
	}
	p := slices.Clone(latencies)
	slices.Sort(p)
	t.Logf("normal client during the attack: %d postbacks, latency median %v, p99 %v, max %v",
		len(p), p[len(p)/2], p[len(p)*99/100], p[len(p)-1])
}
