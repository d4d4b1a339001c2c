package fanout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
)

// ClientConfig is what the parent sends the client process, as one JSON
// line on its stdin.
type ClientConfig struct {
	// URLs to dial, one per client.
	URLs []string `json:"urls"`
	// DialConcurrency bounds the dials in flight.
	DialConcurrency int `json:"dial_concurrency"`
	// LocalIP, when set, is the source address of the clients (a second
	// loopback address keeps two runs from sharing ephemeral ports).
	LocalIP string `json:"local_ip,omitempty"`
}

// ClientReport is the client process's answer to "stop".
type ClientReport struct {
	Connected int     `json:"connected"`
	Failed    int     `json:"failed"`
	Closed    int64   `json:"closed"` // connections the server closed during the run
	Updates   int64   `json:"updates"`
	P50MS     float64 `json:"p50_ms"`
	P90MS     float64 `json:"p90_ms"`
	P99MS     float64 `json:"p99_ms"`
	P999MS    float64 `json:"p999_ms"`
	MaxMS     float64 `json:"max_ms"`
	FirstErr  string  `json:"first_err,omitempty"`
}

// hist is a lock-free log-linear histogram of latencies: bucket i holds
// durations around 1.01^i microseconds (1 % precision).
type hist struct {
	buckets [2400]atomic.Int64
	max     atomic.Int64
	n       atomic.Int64
}

const histBase = 1.01

func (h *hist) record(d time.Duration) {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		us = 1
	}
	i := int(math.Log(us) / math.Log(histBase))
	if i >= len(h.buckets) {
		i = len(h.buckets) - 1
	}
	h.buckets[i].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

func (h *hist) reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	h.max.Store(0)
	h.n.Store(0)
}

// quantile returns the q-quantile in milliseconds.
func (h *hist) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return math.Pow(histBase, float64(i)+1) / 1000
		}
	}
	return float64(h.max.Load()) / float64(time.Millisecond)
}

var totalKey = []byte(`"total":`)

// sentAt reads when an update was produced from its "total", which the
// benchmark sets to the production time in microseconds since the epoch
// (see the package comment), without decoding the whole message: the
// client process must not be the bottleneck.
func sentAt(msg []byte) (time.Time, bool) {
	if !bytes.Contains(msg[:min(len(msg), 40)], []byte(`"type":"update"`)) {
		return time.Time{}, false
	}
	i := bytes.Index(msg, totalKey)
	if i < 0 {
		return time.Time{}, false
	}
	rest := msg[i+len(totalKey):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return time.Time{}, false
	}
	us, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil || us <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// RunClients is the client process: it reads a ClientConfig line from in,
// dials every URL, writes a {"connected":n} line, then records the delivery
// latency of every update until it reads "stop" (a "reset" line clears the
// figures after the warm-up), and writes a ClientReport line.
func RunClients(in io.Reader, out io.Writer) error {
	if _, err := RaiseFDLimit(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<20), 64<<20)
	if !sc.Scan() {
		return fmt.Errorf("fanout: reading the client config: %w", sc.Err())
	}
	var cfg ClientConfig
	if err := json.Unmarshal(sc.Bytes(), &cfg); err != nil {
		return fmt.Errorf("fanout: decoding the client config: %w", err)
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 100
	}
	dialer := &fws.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}
	if cfg.LocalIP != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(cfg.LocalIP)}, Timeout: 30 * time.Second}
		dialer.NetDial = nd.Dial
	}

	var (
		h        hist
		updates  atomic.Int64
		closed   atomic.Int64
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr string
		mu       sync.Mutex
		conns    []*fws.Conn
		wg       sync.WaitGroup
		stopping atomic.Bool
	)
	sem := make(chan struct{}, cfg.DialConcurrency)
	var dials sync.WaitGroup
	for _, u := range cfg.URLs {
		sem <- struct{}{}
		dials.Add(1)
		go func() {
			defer dials.Done()
			defer func() { <-sem }()
			var c *fws.Conn
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				if c, _, err = dialer.Dial(u, nil); err == nil {
					break
				}
				time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
			}
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err.Error() })
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, msg, err := c.ReadMessage()
					if err != nil {
						if !stopping.Load() {
							closed.Add(1)
						}
						return
					}
					if t, ok := sentAt(msg); ok {
						h.record(time.Since(t))
						updates.Add(1)
					}
				}
			}()
		}()
	}
	dials.Wait()
	fmt.Fprintf(out, "{\"connected\":%d,\"failed\":%d}\n", len(conns), failed.Load())

	for sc.Scan() {
		switch sc.Text() {
		case "reset":
			h.reset()
			updates.Store(0)
			fmt.Fprintln(out, `{"reset":true}`)
		case "stop":
			rep := ClientReport{
				Connected: len(conns), Failed: int(failed.Load()), Closed: closed.Load(), Updates: updates.Load(),
				P50MS: h.quantile(0.50), P90MS: h.quantile(0.90), P99MS: h.quantile(0.99), P999MS: h.quantile(0.999),
				MaxMS: float64(h.max.Load()) / float64(time.Millisecond), FirstErr: firstErr,
			}
			stopping.Store(true)
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
			b, _ := json.Marshal(rep)
			_, err := fmt.Fprintf(out, "%s\n", b)
			return err
		}
	}
	return fmt.Errorf("fanout: stdin closed before stop: %w", sc.Err())
}
