package ingest

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/kafkatest"
)

// rawExchange writes req on a new TCP connection to addr, reads one answer,
// then reads on until the server closes the connection (or wait passes).
// It returns the answer, its body, what came after it, and whether the
// server closed the connection.
func rawExchange(t *testing.T, addr, req string, wait time.Duration) (*http.Response, []byte, []byte, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	closed := err == nil // io.ReadAll returns nil at EOF
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		closed = true // reset by the server
	}
	return resp, body, rest, closed
}

// TestLowLevelErrorsEchoNothing: requests fasthttp refuses before any
// handler runs get a JSON error that holds no byte of the request (the
// default handler echoes the request, access key included) and the
// connection is closed.
func TestLowLevelErrorsEchoNothing(t *testing.T) {
	e := startEdge(t, nil)
	const secret = "/" + testKey + "?influencer_id=secret-influencer"
	tests := []struct {
		name  string
		req   string
		code  int
		field string
		parts []string // parts of the request the answer must not contain
	}{
		{"bad Content-Length", "POST " + secret + " HTTP/1.1\r\nHost: edge.example\r\nX-Sender: brand-77\r\nContent-Length: 12abc\r\n\r\n{}",
			400, "content-length", []string{testKey, "secret-influencer", "12abc", "edge.example", "brand-77", "POST /"}},
		{"negative Content-Length", "POST " + secret + " HTTP/1.1\r\nHost: edge.example\r\nContent-Length: -5\r\n\r\n{}",
			400, "content-length", []string{testKey, "secret-influencer", "-5", "edge.example"}},
		{"two Content-Lengths", "POST " + secret + " HTTP/1.1\r\nHost: edge.example\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
			400, "content-length", []string{testKey, "secret-influencer", "edge.example"}},
		{"unsupported Transfer-Encoding", "POST " + secret + " HTTP/1.1\r\nHost: edge.example\r\nTransfer-Encoding: gzip-brand-77\r\n\r\n{}",
			400, "transfer-encoding", []string{testKey, "secret-influencer", "gzip-brand-77", "edge.example"}},
		{"header name with a space", "GET " + secret + " HTTP/1.1\r\nHost: edge.example\r\nX Brand-77: y\r\n\r\n",
			400, "headers", []string{testKey, "secret-influencer", "Brand-77", "edge.example"}},
		{"bad HTTP version", "GET " + secret + " HTTP/x.y\r\nHost: edge.example\r\n\r\n",
			400, "request", []string{testKey, "secret-influencer", "x.y", "edge.example"}},
		{"no space in the request line", "GET" + secret + "\r\nHost: edge.example\r\n\r\n",
			400, "request", []string{testKey, "secret-influencer", "edge.example"}},
		{"bad chunk size", "POST " + secret + " HTTP/1.1\r\nHost: edge.example\r\nTransfer-Encoding: chunked\r\n\r\nzz-brand-77\r\n",
			400, "body", []string{testKey, "secret-influencer", "brand-77", "edge.example"}},
		{"headers too large", "GET " + secret + " HTTP/1.1\r\nHost: edge.example\r\nX-Big: " + strings.Repeat("k", 8<<10) + "\r\n\r\n",
			431, "headers", []string{testKey, "secret-influencer", "kkkk", "edge.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _, closed := rawExchange(t, e.Addr(), tt.req, 2*time.Second)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var m errorBody
			if err := json.Unmarshal(body, &m); err != nil || m.Error == "" {
				t.Fatalf("body %q is not a JSON error: %v", body, err)
			}
			if m.Field != tt.field {
				t.Errorf("field %q, want %q (body %s)", m.Field, tt.field, body)
			}
			whole := strings.ToLower(string(body))
			for k, vs := range resp.Header {
				whole += "\n" + strings.ToLower(k+": "+strings.Join(vs, ","))
			}
			for _, p := range tt.parts {
				if strings.Contains(whole, strings.ToLower(p)) {
					t.Errorf("the answer echoes %q of the request:\n%s", p, whole)
				}
			}
			if !closed {
				t.Error("the connection stayed open after a malformed request")
			}
		})
	}
}

// TestSmuggling: a request with both Content-Length and Transfer-Encoding
// is refused with 400 naming the header, the connection is closed, and the
// request hidden in its body (as a front proxy reading Content-Length would
// not see it) is never answered nor produced.
func TestSmuggling(t *testing.T) {
	e := startEdge(t, nil)
	hidden := "GET /" + testKey + "?influencer_id=smuggled&product=product HTTP/1.1\r\nHost: x\r\n\r\n"
	chunked := "0\r\n\r\n"
	tests := []struct{ name, req string }{
		{"CL.TE: Content-Length first", "POST /" + testKey + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + hidden},
		{"TE.CL: Transfer-Encoding first", "POST /" + testKey + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + chunked + hidden},
		{"odd case and tab", "POST /" + testKey + " HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 5\r\ntransfer-encoding: Chunked\r\n\r\n" + chunked + hidden},
		{"Transfer-Encoding: identity", "POST /" + testKey + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}" + hidden},
		{"GET with both", "GET /" + testKey + "?influencer_id=a&product=product HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + hidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, rest, closed := rawExchange(t, e.Addr(), tt.req, 2*time.Second)
			if resp.StatusCode != 400 {
				t.Fatalf("status %d %q, want 400", resp.StatusCode, body)
			}
			var m errorBody
			if err := json.Unmarshal(body, &m); err != nil || m.Error == "" {
				t.Fatalf("body %q is not a JSON error: %v", body, err)
			}
			if m.Field != "transfer-encoding" || !strings.Contains(m.Error, "Transfer-Encoding") {
				t.Errorf("error %+v does not name the Transfer-Encoding header", m)
			}
			if len(rest) > 0 {
				t.Errorf("the hidden request was answered: %q", rest)
			}
			if !closed {
				t.Error("the connection stayed open")
			}
		})
	}
	// A plain chunked request still works.
	resp, body, _, _ := rawExchange(t, e.Addr(), "POST /"+testKey+" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		"2f\r\n{\"influencer_id\":\"chunked\",\"product\":\"product\"}\r\n0\r\n\r\n", time.Second)
	if resp.StatusCode != 202 {
		// The chunk size above must match the JSON: fail loudly if not.
		t.Fatalf("plain chunked request: %d %s", resp.StatusCode, body)
	}
	recs := kafkatest.ReadAll(t, e.b.Addr(), e.names.Postbacks(), 2, 3*time.Second)
	if len(recs) != 1 {
		t.Errorf("%d records in the topic, want 1 (the plain chunked request)", len(recs))
	}
	for _, r := range recs {
		if strings.Contains(string(r.Value), "smuggled") {
			t.Errorf("the hidden request was produced: %s", r.Value)
		}
	}
}
