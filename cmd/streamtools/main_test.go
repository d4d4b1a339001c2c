package main

import (
	"strings"
	"testing"
)

// TestVersionAndUnknownCommand: --version prints what the binary was built
// from, and an unknown command says so and lists the commands.
func TestVersionAndUnknownCommand(t *testing.T) {
	out, err := run(t, "--version")
	if err != nil || !strings.HasPrefix(out, "streamtools version ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version: %q, %v", out, err)
	}
	_, err = run(t, "frobnicate")
	if err == nil {
		t.Fatal("an unknown command succeeded")
	}
	for _, want := range []string{`unknown command "frobnicate"`, "dev", "ingest", "process", "--help"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unknown command error %q lacks %q", err, want)
		}
	}
}
