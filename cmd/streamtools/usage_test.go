package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
)

// runAll runs `streamtools args...` in process and returns what it wrote on
// stdout and stderr, and its error. An exit code urfave/cli would exit the
// process with is an error here.
func runAll(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	app.ExitErrHandler = func(context.Context, *cli.Command, error) {}
	err = app.Run(ctx, append([]string{"streamtools"}, args...))
	return out.String(), errOut.String(), err
}

// TestUsageErrors: a wrong command line, at any depth of the tree, is one
// error that says what is wrong and which --help to read, with no help
// printed: an unknown subcommand lists the commands there (urfave/cli said
// "No help topic for 'frob'" and exited 3), an argument to a command that
// takes none is refused (`dashboard frob` started the dashboard), and a
// missing required flag is named once (urfave/cli printed the whole help,
// then the error, then main printed it again).
func TestUsageErrors(t *testing.T) {
	// Were dev to start, it would not take the default addresses.
	devArgs := []string{"--data-dir", t.TempDir(), "--postgres-bin-dir", t.TempDir(), "--log-level", "error",
		"--broker-listen", "127.0.0.1:0", "--ingest-listen", "127.0.0.1:0", "--widgetd-listen", "127.0.0.1:0",
		"--dashboard-listen", "127.0.0.1:0", "--postgres-port", "0"}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"; the commands are dev, broker, ingest`, "(streamtools --help says what each does)"}},
		{[]string{"customers", "frob"}, []string{`unknown command "customers frob"; the commands of customers are set, product, list (streamtools customers --help says what each does)`}},
		{[]string{"keys", "frob"}, []string{`unknown command "keys frob"; the commands of keys are create, revoke, list`}},
		{[]string{"dashboard", "users", "frob"}, []string{`unknown command "dashboard users frob"; the commands of dashboard users are create, reset-password, list, delete`}},
		{[]string{"bench", "frob"}, []string{`unknown command "bench frob"; the commands of bench are all, e2e,`}},
		{[]string{"dashboard", "frob"}, []string{`unknown command "dashboard frob"; the commands of dashboard are users`}},
		{append([]string{"dev", "frob"}, devArgs...), []string{`dev takes no arguments, only flags: remove "frob" (streamtools dev --help lists the flags)`}},
		{[]string{"migrate", "up", "now"}, []string{`migrate takes no arguments, only flags: remove "up now"`}},
		{[]string{"customers", "list", "acme"}, []string{`customers list takes no arguments, only flags: remove "acme"`}},
		{[]string{"dashboard", "users", "create"}, []string{`dashboard users create needs --customer and --login (streamtools dashboard users create --help says what each is)`}},
		{[]string{"customers", "set", "--name", "Acme"}, []string{`customers set needs --code (`}},
		{[]string{"customers", "list", "--frob"}, []string{`customers list: flag provided but not defined: -frob (streamtools customers list --help lists the flags)`}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errOut, err := runAll(t, c.args...)
			if err == nil {
				t.Fatalf("succeeded; stdout:\n%s", out)
			}
			if ec, ok := err.(cli.ExitCoder); ok {
				t.Errorf("error %q carries exit code %d", err, ec.ExitCode())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if out != "" || errOut != "" {
				t.Errorf("printed besides the error:\nstdout:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
	// Without arguments, a command with subcommands still shows its help.
	if out, _, err := runAll(t, "customers"); err != nil || !strings.Contains(out, "COMMANDS:") {
		t.Errorf("streamtools customers: %v\n%s", err, out)
	}
}

// TestRequiredFlagsMarked: the help says which flags are required.
func TestRequiredFlagsMarked(t *testing.T) {
	out := mustRun(t, "dashboard", "users", "create", "--help")
	for _, flag := range []string{"--customer", "--login"} {
		if line := lineOf(out, flag+" "); !strings.HasSuffix(line, " (required)") {
			t.Errorf("the help line of %s does not end in (required): %q", flag, line)
		}
	}
	if strings.Contains(lineOf(out, "--password-stdin"), "(required)") {
		t.Errorf("an optional flag is marked required:\n%s", out)
	}
	var walk func(c *cli.Command, path string)
	walk = func(c *cli.Command, path string) {
		for _, f := range c.Flags {
			if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
				if u := fmt.Sprint(f); !strings.Contains(u, "(required)") {
					t.Errorf("%s --%s is required, and its help says %q", path, f.Names()[0], u)
				}
			}
		}
		for _, sub := range c.Commands {
			walk(sub, path+" "+sub.Name)
		}
	}
	walk(newApp(), "streamtools")
}

// lineOf is the line of out that holds s, "" when none does.
func lineOf(out, s string) string {
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
