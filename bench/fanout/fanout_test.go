package fanout

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

const envClients = "FANOUT_TEST_CLIENT_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(envClients) != "" {
		if err := RunClients(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A small run of the whole benchmark: both sides connect every client and
// deliver updates. It checks the machinery, not the figures.
func TestRunSmall(t *testing.T) {
	t.Setenv(envClients, "1") // inherited by the client process only
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, wd, err := Run(ctx, Config{
		Clients: 200, Influencers: 20, Rate: 5, Warmup: 500 * time.Millisecond, Duration: 2 * time.Second,
		ClientCommand: []string{os.Args[0], "-test.run=^$"}, Out: &out,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Result{base, wd} {
		if r.Connected != 200 || r.Updates == 0 || r.P99MS <= 0 {
			t.Errorf("%s: %+v; want 200 clients receiving updates", r.Name, r)
		}
	}
}

func TestSentAt(t *testing.T) {
	now := time.UnixMicro(time.Now().UnixMicro())
	msg := fmt.Appendf(nil, `{"type":"update","customer_code":"bench","total":%d,"title":"Sign-ups"}`, now.UnixMicro())
	if got, ok := sentAt(msg); !ok || !got.Equal(now) {
		t.Errorf("sentAt = %v, %v; want %v", got, ok, now)
	}
	if got, ok := sentAt(fmt.Appendf(nil, `{"type":"update","total":%d}`, now.UnixMicro())); !ok || !got.Equal(now) {
		t.Errorf("sentAt with total last = %v, %v; want %v", got, ok, now)
	}
	if _, ok := sentAt(fmt.Appendf(nil, `{"type":"snapshot","total":%d}`, now.UnixMicro())); ok {
		t.Error("a snapshot counted as an update")
	}
	if got := nextCount(now.UnixMicro() + 1e9); got != now.UnixMicro()+1e9+1 {
		t.Errorf("nextCount does not rise past a count ahead of the clock: %d", got)
	}
}
