package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/pgembed"
)

// TestDevBusyAddress: when an address of dev is taken (another dev runs),
// dev's error names the address and the flag that moves it, whichever part
// it is.
func TestDevBusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	for _, c := range []struct {
		flag, part string
		postgres   bool // the part needs the PostgreSQL server binaries
	}{
		{flag: "--broker-listen", part: "broker"},
		{flag: "--ingest-listen", part: "ingest"},
		{flag: "--widgetd-listen", part: "widgetd"},
		{flag: "--postgres-port", part: "postgres", postgres: true},
	} {
		t.Run(c.part, func(t *testing.T) {
			if _, err := pgembed.FindBinDir(); c.postgres && err != nil {
				t.Fatalf("%v: install the PostgreSQL server binaries (apt-get install postgresql; .ci/run does)", err)
			}
			addr := func(flag string) string {
				if flag == c.flag {
					return "127.0.0.1:" + busyPort
				}
				return fmt.Sprintf("127.0.0.1:%d", freePort(t))
			}
			args := []string{"dev", "--data-dir", t.TempDir(), "--log-level", "error",
				"--broker-listen", addr("--broker-listen"), "--ingest-listen", addr("--ingest-listen"),
				"--widgetd-listen", addr("--widgetd-listen"), "--dashboard-listen", addr("--dashboard-listen")}
			if c.postgres {
				args = append(args, "--postgres-port", busyPort)
			} else {
				args = append(args, "--postgres-bin-dir", t.TempDir()) // none: quicker
			}
			_, err := run(t, args...)
			want := fmt.Sprintf("starting %s: 127.0.0.1:%s is in use (another streamtools dev?): pass %s to use another ",
				c.part, busyPort, c.flag)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one that says %q", err, want)
			}
		})
	}

	// The dashboard listens before it touches the database (which needs
	// Postgres, and the parts before it).
	t.Run("dashboard", func(t *testing.T) {
		var startErr error
		cmd := &cli.Command{Name: "dev", Flags: flags(devDashboardFlags(), devWidgetdFlags()),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				_, startErr = startDevDashboard(ctx, &devEnv{Cmd: cmd, DataDir: t.TempDir(),
					DatabaseURL: "postgres://nobody@127.0.0.1:1/none", Log: slog.New(slog.DiscardHandler)})
				return nil
			}}
		if err := cmd.Run(context.Background(), []string{"dev", "--dashboard-listen", busy.Addr().String()}); err != nil {
			t.Fatal(err)
		}
		want := busy.Addr().String() + " is in use (another streamtools dev?): pass --dashboard-listen to use another address"
		if startErr == nil || startErr.Error() != want {
			t.Fatalf("err = %v, want %q", startErr, want)
		}
	})
}

func TestBrowsableAndShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8081": "127.0.0.1:8081",
		"0.0.0.0:8081":   "127.0.0.1:8081",
		"[::]:8081":      "127.0.0.1:8081",
		":8081":          "127.0.0.1:8081",
		"example.org:80": "example.org:80",
		"[::1]:8081":     "[::1]:8081",
	} {
		if got := browsable(in); got != want {
			t.Errorf("browsable(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		".streamtools":         "",
		"/tmp/dev-2":           " --data-dir /tmp/dev-2",
		"my dev":               ` --data-dir 'my dev'`,
		"it's":                 ` --data-dir 'it'\''s'`,
		"$HOME/x":              ` --data-dir '$HOME/x'`,
		"/srv/st/.streamtools": " --data-dir /srv/st/.streamtools",
	} {
		if got := dataDirArg(in); got != want {
			t.Errorf("dataDirArg(%q) = %q, want %q", in, got, want)
		}
	}
	if got := shellQuote(""); got != "''" {
		t.Errorf(`shellQuote("") = %s, want ''`, got)
	}
}
