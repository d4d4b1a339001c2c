package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
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

// TestNewAppSharesNothing: every newApp builds its own commands and flags
// (urfave/cli keeps parents, help commands and parsed values in them; with
// shared ones a second app in the same process looped forever), no command
// has two flags of one name, and apps run one inside another.
func TestNewAppSharesNothing(t *testing.T) {
	first := map[any]string{}
	var walk func(c *cli.Command, path string, visit func(any, string))
	walk = func(c *cli.Command, path string, visit func(any, string)) {
		visit(c, path)
		names := map[string]bool{}
		for _, f := range c.Flags {
			visit(f, path+" --"+f.Names()[0])
			for _, n := range f.Names() {
				if names[n] {
					t.Errorf("%s has two flags named %s", path, n)
				}
				names[n] = true
			}
		}
		for _, sub := range c.Commands {
			walk(sub, path+" "+sub.Name, visit)
		}
	}
	walk(newApp(), "streamtools", func(v any, path string) { first[v] = path })
	walk(newApp(), "streamtools", func(v any, path string) {
		if p, ok := first[v]; ok {
			t.Errorf("two apps share %s (the first's %s)", path, p)
		}
	})

	for range 2 {
		if out := mustRun(t, "dev", "--help"); !strings.Contains(out, "--ingest-listen") {
			t.Fatalf("dev --help lacks a dev part's flag:\n%s", out)
		}
	}
	// An app whose action runs another app, as the chaos test's children
	// and the dev tests do.
	outer := newApp()
	outer.Commands = append(outer.Commands, &cli.Command{Name: "nested", Action: func(ctx context.Context, _ *cli.Command) error {
		_, err := run(t, "--version")
		return err
	}})
	outer.Writer, outer.ErrWriter = io.Discard, io.Discard
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := outer.Run(ctx, []string{"streamtools", "nested"}); err != nil {
		t.Fatal(err)
	}
}
