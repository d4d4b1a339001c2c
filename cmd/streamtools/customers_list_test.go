package main

import (
	"strings"
	"testing"

	"github.com/streamtools/streamtools/internal/kafkatest"
)

// TestCustomersListShowsProducts: `customers list` shows each product with
// what its widget starts from: title, goal and the event types it counts.
func TestCustomersListShowsProducts(t *testing.T) {
	b := kafkatest.Start(t, "")
	k := []string{"--brokers", b.Addr(), "--topic-prefix", kafkatest.Names(t).Prefix}
	mustRun(t, append([]string{"customers", "set", "--code", "acme", "--name", "Acme", "--timezone", "Europe/Paris"}, k...)...)
	mustRun(t, append([]string{"customers", "product", "--customer", "acme", "--code", "shoes", "--title", "Shoe sales", "--goal", "50", "--event-types", "reg, dep"}, k...)...)
	mustRun(t, append([]string{"customers", "product", "--customer", "acme", "--code", "hats"}, k...)...)
	// Flags keep their state across in-process runs (they are built once):
	// give every flag the earlier runs gave.
	mustRun(t, append([]string{"customers", "set", "--code", "open", "--name", "", "--timezone", "UTC"}, k...)...)

	list := mustRun(t, append([]string{"customers", "list"}, k...)...)
	lines := strings.Split(strings.TrimSpace(list), "\n")
	want := [][]string{
		{"CODE", "NAME", "TIMEZONE", "ANTICHEAT", "RATE", "LIMIT", "PRODUCT", "TITLE", "GOAL", "EVENT", "TYPES"},
		{"acme", "Acme", "Europe/Paris", "false", "0", "hats", "-", "none", "all"},
		{"shoes", "Shoe", "sales", "50", "reg,dep"},
		{"open", "UTC", "false", "0", "(any)"},
	}
	if len(lines) != len(want) {
		t.Fatalf("customers list has %d lines, want %d:\n%s", len(lines), len(want), list)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d is %q, want the fields %q:\n%s", i, lines[i], w, list)
		}
	}
}
