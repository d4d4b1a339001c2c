package ingest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit is the listener of the edge: it bounds the open connections to
// MaxConns and answers one beyond it the edge's JSON 503 with Retry-After.
// fasthttp's own limit (Server.Concurrency) has no hook: it writes a
// text/plain 503 of its own, so the edge enforces the limit here and sets
// Concurrency above it, as a backstop only.
type connLimit struct {
	net.Listener
	max      int64
	open     atomic.Int64
	refusing atomic.Int64 // refusals being written
	answer   []byte       // the whole 503 response
	refused  func()       // counts and logs a refusal
}

// maxRefusing bounds the refusals written at once: beyond it, a connection
// is closed without an answer (a flood is not worth a goroutine each).
const maxRefusing = 1024

// newConnLimit returns the listener; full is the refusal of a connection
// beyond maxConns, answered as statusTable says.
func newConnLimit(ln net.Listener, maxConns int, full error, retryAfter string, refused func()) *connLimit {
	status, retry, body := bodyOf(full)
	answer := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n", status, http.StatusText(status))
	if retry {
		answer = fmt.Appendf(answer, "Retry-After: %s\r\n", retryAfter)
	}
	answer = fmt.Appendf(answer, "Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return &connLimit{Listener: ln, max: int64(maxConns), answer: answer, refused: refused}
}

func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused()
		if l.refusing.Add(1) > maxRefusing {
			l.refusing.Add(-1)
			c.Close()
			continue
		}
		go l.refuse(c)
	}
}

// refuse writes the 503, then reads what the client sent, for at most a
// second, before closing: closing with unread bytes would reset the
// connection, and the client could lose the answer.
func (l *connLimit) refuse(c net.Conn) {
	defer l.refusing.Add(-1)
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(l.answer); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// limitedConn gives its place back once closed.
type limitedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
