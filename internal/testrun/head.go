package testrun

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// HeadThenHealthz sends the raw request head (a HEAD, with its headers and
// any body) to addr, then GET /healthz on the same connection, and returns
// the HEAD's answer and the body of the /healthz answer. Any byte of a body
// after the HEAD's headers would be read as the start of the second
// answer, so a HEAD answered with a body fails the test.
func HeadThenHealthz(t *testing.T, addr, head string) (resp *http.Response, healthz string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, head+"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	next, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer after the HEAD's (did the HEAD's answer carry a body?): %v", err)
	}
	b, _ := io.ReadAll(next.Body)
	next.Body.Close()
	if next.StatusCode != 200 {
		t.Errorf("the GET /healthz after the HEAD answered %d %q: the HEAD's answer carried a body", next.StatusCode, b)
	}
	return resp, string(b)
}
