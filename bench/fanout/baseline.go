package fanout

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// baseline is the plain broadcast the benchmark compares widgetd with: a
// fasthttp server, fasthttp/websocket upgrades, a map of subscribers per
// influencer, and a writer goroutine with a small queue per connection. No
// Kafka, no settings, no snapshots: the floor of what a websocket fan-out
// costs on this machine.
type baseline struct {
	ln  net.Listener
	srv *fasthttp.Server

	mu     sync.Mutex
	subs   map[string]map[*bconn]struct{} // by influencer; guarded by mu
	wg     sync.WaitGroup
	quit   chan struct{}
	served chan error // receives what Serve returned
}

type bconn struct {
	c  *fws.Conn
	ch chan []byte
}

var baselinePool = &sync.Pool{}

func startBaseline() (*baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &baseline{ln: ln, subs: map[string]map[*bconn]struct{}{}, quit: make(chan struct{}), served: make(chan error, 1)}
	up := fws.FastHTTPUpgrader{ReadBufferSize: 256, WriteBufferSize: 1024, WriteBufferPool: baselinePool,
		CheckOrigin: func(*fasthttp.RequestCtx) bool { return true }}
	b.srv = &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			infl := strings.TrimPrefix(string(ctx.Path()), "/ws/")
			err := up.Upgrade(ctx, func(c *fws.Conn) { b.serve(infl, c) })
			if err != nil {
				ctx.Error("upgrade required", fasthttp.StatusUpgradeRequired)
			}
		},
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	}
	go func() { b.served <- b.srv.Serve(ln) }()
	return b, nil
}

func (b *baseline) addr() string { return b.ln.Addr().String() }

func (b *baseline) serve(infl string, c *fws.Conn) {
	b.wg.Add(1)
	defer b.wg.Done()
	bc := &bconn{c: c, ch: make(chan []byte, 8)}
	b.mu.Lock()
	set := b.subs[infl]
	if set == nil {
		set = map[*bconn]struct{}{}
		b.subs[infl] = set
	}
	set[bc] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(set, bc)
		b.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
		}
	}()
	defer func() { c.Close(); <-done }()
	for {
		select {
		case msg := <-bc.ch:
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := c.WriteMessage(fws.TextMessage, msg); err != nil {
				return
			}
		case <-done:
			return
		case <-b.quit:
			return
		}
	}
}

// broadcast queues msg to every subscriber of infl; a full queue drops it.
func (b *baseline) broadcast(infl string, msg []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for bc := range b.subs[infl] {
		select {
		case bc.ch <- msg:
		default:
		}
	}
}

// close stops the baseline and returns why it stopped serving, if it
// stopped before close.
func (b *baseline) close() error {
	close(b.quit)
	err := b.srv.Shutdown()
	b.wg.Wait()
	if serr := <-b.served; serr != nil {
		err = errors.Join(err, fmt.Errorf("fanout: the baseline stopped serving: %w", serr))
	}
	return err
}
