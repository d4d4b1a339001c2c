package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/kafkatest"
)

// run runs `streamtools args...` in process and returns its standard output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(ctx, append([]string{"streamtools"}, args...))
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("streamtools %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// TestTenantCommands drives customers and keys as an operator would, against
// a real broker: create, list, revoke, and the errors that name the fix.
func TestTenantCommands(t *testing.T) {
	b := kafkatest.Start(t, "")
	k := []string{"--brokers", b.Addr(), "--topic-prefix", kafkatest.Names(t).Prefix}

	if _, err := run(t, append([]string{"keys", "create", "--customer", "acme"}, k...)...); err == nil ||
		!strings.Contains(err.Error(), "customers set --code acme") {
		t.Fatalf("a key for an unknown customer: err = %v, want one that says how to create the customer", err)
	}
	mustRun(t, append([]string{"customers", "set", "--code", "acme", "--timezone", "America/New_York", "--anticheat"}, k...)...)
	mustRun(t, append([]string{"customers", "product", "--customer", "acme", "--code", "shoes", "--title", "Shoe sales", "--goal", "50"}, k...)...)
	if _, err := run(t, append([]string{"customers", "set", "--code", "acme", "--timezone", "Mars/Olympus"}, k...)...); err == nil ||
		!strings.Contains(err.Error(), "IANA") {
		t.Fatalf("a bad time zone: err = %v, want one that names IANA zones", err)
	}
	list := mustRun(t, append([]string{"customers", "list"}, k...)...)
	if !strings.Contains(list, "acme") || !strings.Contains(list, "America/New_York") || !strings.Contains(list, "shoes") {
		t.Fatalf("customers list:\n%s", list)
	}

	key := strings.TrimSpace(mustRun(t, append([]string{"keys", "create", "--customer", "acme", "--label", "network"}, k...)...))
	if !strings.HasPrefix(key, "stk_") || len(key) != 4+64 {
		t.Fatalf("keys create printed %q, want stk_ and 64 hex digits", key)
	}
	keys := mustRun(t, append([]string{"keys", "list"}, k...)...)
	if strings.Contains(keys, key) || !strings.Contains(keys, "network") {
		t.Fatalf("keys list must show the key's id and label, never the key:\n%s", keys)
	}
	mustRun(t, append([]string{"keys", "revoke", key}, k...)...)
	keys = mustRun(t, append([]string{"keys", "list", "--customer", "acme"}, k...)...)
	lines := strings.Split(strings.TrimSpace(keys), "\n")
	// CREATED and REVOKED both carry today's date once revoked.
	if len(lines) != 2 || strings.Count(lines[1], time.Now().UTC().Format("2006-01-02")) != 2 {
		t.Fatalf("after revoke, keys list should show a revocation date:\n%s", keys)
	}
	if _, err := run(t, append([]string{"keys", "revoke", "stk_nothing"}, k...)...); err == nil {
		t.Fatal("revoking an unknown key succeeded")
	}
}

// unsetenv unsets the variables names for the rest of the test.
func unsetenv(t *testing.T, names ...string) {
	for _, n := range names {
		t.Setenv(n, "") // restores the value when the test ends
		os.Unsetenv(n)
	}
}

// TestOperatorBrokers: the operator commands' brokers are --brokers, else
// STREAMTOOLS_BROKERS, else the address that the streamtools dev running
// with --data-dir wrote there, else 127.0.0.1:9092; each says where its
// brokers came from.
func TestOperatorBrokers(t *testing.T) {
	unsetenv(t, "STREAMTOOLS_BROKERS", "STREAMTOOLS_DATA_DIR")
	dir := t.TempDir()
	file := filepath.Join(dir, "brokers")
	resolve := func(args ...string) operatorBrokerAddrs {
		t.Helper()
		var got operatorBrokerAddrs
		cmd := &cli.Command{Name: "op", Flags: tenantFlags(), Action: func(_ context.Context, cmd *cli.Command) error {
			var err error
			got, err = operatorBrokers(cmd)
			return err
		}}
		if err := cmd.Run(context.Background(), append([]string{"op"}, args...)); err != nil {
			t.Fatal(err)
		}
		return got
	}
	check := func(name string, got operatorBrokerAddrs, addr, from string) {
		t.Helper()
		if strings.Join(got.addrs, ",") != addr || !strings.Contains(got.from, from) {
			t.Errorf("%s: brokers %v %s, want %s %s", name, got.addrs, got.from, addr, from)
		}
	}

	check("nothing", resolve("--data-dir", dir), "127.0.0.1:9092", "the default: no --brokers, no STREAMTOOLS_BROKERS, no streamtools dev running with --data-dir "+dir)
	if err := os.WriteFile(file, []byte("127.0.0.1:1111\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("dev's file", resolve("--data-dir", dir), "127.0.0.1:1111", "from "+file+", which streamtools dev writes while it runs")
	check("another --data-dir", resolve("--data-dir", t.TempDir()), "127.0.0.1:9092", "the default")
	check("--brokers", resolve("--data-dir", dir, "--brokers", "127.0.0.1:2222"), "127.0.0.1:2222", "from --brokers")
	t.Setenv("STREAMTOOLS_BROKERS", "127.0.0.1:3333")
	check("STREAMTOOLS_BROKERS", resolve("--data-dir", dir), "127.0.0.1:3333", "from STREAMTOOLS_BROKERS")
	check("--brokers and STREAMTOOLS_BROKERS", resolve("--data-dir", dir, "--brokers", "127.0.0.1:2222"), "127.0.0.1:2222", "from --brokers")
}

// TestOperatorBrokersUnreachable: brokers that do not answer are named in
// the error, with where their address came from and what to do.
func TestOperatorBrokersUnreachable(t *testing.T) {
	unsetenv(t, "STREAMTOOLS_BROKERS", "STREAMTOOLS_DATA_DIR")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens there
	if err := os.WriteFile(filepath.Join(dir, "brokers"), []byte(addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"customers", "list"},
		{"keys", "create", "--customer", "acme"},
		{"dashboard", "users", "create", "--customer", "acme", "--login", "x@acme.example"},
	} {
		_, err := run(t, append(args, "--data-dir", dir)...)
		want := "reaching the Kafka brokers " + addr + " (from " + filepath.Join(dir, "brokers") +
			", which streamtools dev writes while it runs; is that dev still running? else pass --brokers): "
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want one that says %q", strings.Join(args, " "), err, want)
		}
	}
}

// TestReadOnlyCommandsCreateNoTopic: with a --topic-prefix that names no
// topics (a typo), the commands that only read the tenant topics fail, and
// say which topic is missing where, instead of creating it and showing an
// empty list; the commands that write still create them.
func TestReadOnlyCommandsCreateNoTopic(t *testing.T) {
	b := kafkatest.Start(t, "")
	typo := "typo-" + kafkatest.Names(t).Prefix
	k := []string{"--brokers", b.Addr(), "--topic-prefix", typo}
	for _, args := range [][]string{
		{"customers", "list"},
		{"keys", "list"},
		{"dashboard", "users", "create", "--customer", "acme", "--login", "x@acme.example"},
	} {
		_, err := run(t, append(args, k...)...)
		want := fmt.Sprintf("topic %scustomers does not exist on the brokers %s (from --brokers): check --topic-prefix (%q;",
			typo, b.Addr(), typo)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want one that says %q", strings.Join(args, " "), err, want)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, typo) {
			t.Errorf("a read-only command created the topic %s", name)
		}
	}

	mustRun(t, append([]string{"customers", "set", "--code", "acme"}, k...)...)
	if list := mustRun(t, append([]string{"customers", "list"}, k...)...); !strings.Contains(list, "acme") {
		t.Errorf("customers list after customers set created the topics:\n%s", list)
	}
}
