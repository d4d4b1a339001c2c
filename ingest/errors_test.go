package ingest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestErrorTable walks statusTable: for each kind of refusal it sends a
// request the edge refuses that way, over TCP, and checks the answer the
// table promises: the status, a JSON body holding only "error" (what to
// change) and "field" (the field at fault, when there is one), and
// Retry-After exactly when the row says so. A row without a request fails.
func TestErrorTable(t *testing.T) {
	const readTimeout = time.Second
	e := startEdge(t, func(c *Config) { c.ReadTimeout = readTimeout })
	full := startEdgeOn(t, e.b, func(c *Config) { c.MaxConns = 1 })

	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: edge\r\n\r\n" }
	post := func(path, ctype, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: edge\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", path, ctype, len(body), body)
	}
	type exchange struct {
		resp *http.Response
		body []byte
	}
	send := func(t *testing.T, addr, req string) exchange {
		t.Helper()
		resp, body, _, _ := rawExchange(t, addr, req, 0)
		return exchange{resp, body}
	}
	cases := map[error]struct {
		field string
		fix   []string // what the message must say
		send  func(t *testing.T) exchange
	}{
		errInvalid: {"country", []string{"ISO 3166-1 alpha-2", "FR"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), get("/"+testKey+"?influencer_id=a&product=product&country=France"))
		}},
		errUnauthorized: {"access_key", []string{"streamtools keys create"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), get("/unknown-access-key?influencer_id=a&product=product"))
		}},
		errNotFound: {"", []string{"POST or GET /{access_key}"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), get("/"+testKey+"/x/y"))
		}},
		errMethod: {"", []string{"allowed: GET, POST", "POST /{access_key}"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), "PUT /"+testKey+" HTTP/1.1\r\nHost: edge\r\nContent-Length: 0\r\n\r\n")
		}},
		errTimeout: {"", []string{"not received within 1s", "send it whole"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), "POST /"+testKey+" HTTP/1.1\r\nHost: edge\r\nContent-Length: 100\r\n\r\n{")
		}},
		errTooLarge: {"body", []string{"16384", "/batch"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), "POST /"+testKey+" HTTP/1.1\r\nHost: edge\r\nContent-Length: 2097152\r\n\r\n{")
		}},
		errMediaType: {"content-type", []string{"application/json"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), post("/"+testKey, "multipart/form-data; boundary=x", "--x--"))
		}},
		errRateLimited: {"access_key", []string{"retry after the Retry-After delay"}, func(t *testing.T) exchange {
			// slowKey's customer allows one postback a second, a burst of one.
			var x exchange
			for range 5 {
				if x = send(t, e.Addr(), get("/"+slowKey+"?influencer_id=a&product=p")); x.resp.StatusCode != 202 {
					break
				}
			}
			return x
		}},
		errHeadersTooLarge: {"headers", []string{"under 4 KiB"}, func(t *testing.T) exchange {
			return send(t, e.Addr(), "GET /"+testKey+" HTTP/1.1\r\nHost: edge\r\nX-Big: "+strings.Repeat("k", 8<<10)+"\r\n\r\n")
		}},
		errUnavailable: {"", []string{"--max-conns", "retry"}, func(t *testing.T) exchange {
			http.DefaultClient.CloseIdleConnections() // the readiness probes' connection
			var x exchange
			for range 50 {
				// A connection the edge served, kept open, then one beyond it.
				if conn := dialServed(t, full.Addr()); conn != nil {
					x = send(t, full.Addr(), get("/healthz"))
					conn.Close()
					if x.resp.StatusCode != 200 {
						break
					}
				}
				time.Sleep(20 * time.Millisecond) // a previous connection is still counted
			}
			return x
		}},
	}
	for _, row := range statusTable {
		t.Run(fmt.Sprintf("%d %v", row.status, row.kind), func(t *testing.T) {
			c, ok := cases[row.kind]
			if !ok {
				t.Fatalf("no request in the test answers %v: add one", row.kind)
			}
			x := c.send(t)
			if x.resp == nil {
				t.Fatal("no answer")
			}
			if x.resp.StatusCode != row.status {
				t.Fatalf("status %d %s, want %d", x.resp.StatusCode, x.body, row.status)
			}
			if ct := x.resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var m map[string]any
			if err := json.Unmarshal(x.body, &m); err != nil {
				t.Fatalf("body %q is not JSON: %v", x.body, err)
			}
			msg, _ := m["error"].(string)
			field, _ := m["field"].(string)
			delete(m, "error")
			delete(m, "field")
			if len(m) > 0 || msg == "" || field != c.field {
				t.Errorf("body %s: want {\"error\": a message, \"field\": %q} and nothing else", x.body, c.field)
			}
			for _, fix := range c.fix {
				if !strings.Contains(msg, fix) {
					t.Errorf("message %q does not say %q", msg, fix)
				}
			}
			if got := x.resp.Header.Get("Retry-After") != ""; got != row.retryAfter {
				t.Errorf("Retry-After %q; the table says Retry-After is %v", x.resp.Header.Get("Retry-After"), row.retryAfter)
			}
			if row.status == 405 && x.resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}

	// An error of no kind is a bug: 500, and its text is not sent.
	status, retry, body := bodyOf(fmt.Errorf("decoding %q: %w", "/"+testKey, errors.New("boom")))
	if status != 500 || retry || string(body) != `{"error":"internal error"}` {
		t.Errorf("an error of no kind: %d %v %s, want 500 {\"error\":\"internal error\"}", status, retry, body)
	}
}

// dialServed opens a connection to addr on which the edge answered 200,
// so that the edge counts it open; nil when the edge refused it.
func dialServed(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		conn.Close()
		return nil
	}
	return conn
}
