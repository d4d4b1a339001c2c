package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

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
