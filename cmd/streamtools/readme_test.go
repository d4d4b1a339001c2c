package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/doccheck"
)

// docsNotRun are documentation files whose shell blocks the test does not
// run, with the reason; every other block runs unless a marker says why not.
var docsNotRun = map[string]string{
	"docs/benchmark-notes.md": "benchmarks: minutes each, on an idle machine",
}

// docDefaults are the addresses the docs' commands use: dev's defaults.
var docDefaults = []string{"broker", "127.0.0.1:9092", "ingest", "127.0.0.1:8080",
	"widgetd", "127.0.0.1:8081", "dashboard", "127.0.0.1:8082", "postgres", "127.0.0.1:54320"}

// TestDocCommands runs the commands of README.md and docs/*.md as a reader
// pastes them, against `streamtools dev` (docs/development.md, "The
// documentation", says how blocks are written and marked).
//
// The docs use dev's default addresses. Another dev, a benchmark or a test
// of another package may hold those on this machine, so dev runs on free
// ports and every block has the five default addresses replaced by the ones
// dev got, in its commands and in its expected output alike. dev runs with
// its default --data-dir, ./.streamtools, in the directory the blocks run
// in, as in the README (the demo password is read from there).
func TestDocCommands(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "psql", "kcat", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the docs' commands need %s: apt-get install curl postgresql kcat jq (.ci/run installs them)", tool)
		}
	}
	root := filepath.Join("..", "..")
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(docs)
	for _, d := range docs {
		files = append(files, "docs/"+filepath.Base(d))
	}

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "streamtools"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := postgresTempDir(t)
	var pairs []string
	addr := map[string]string{}
	for i := 0; i < len(docDefaults); i += 2 {
		addr[docDefaults[i]] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		pairs = append(pairs, docDefaults[i+1], addr[docDefaults[i]])
	}
	rewrite := strings.NewReplacer(pairs...).Replace
	// A STREAMTOOLS_* variable of whoever runs the tests would change what
	// dev and the commands do.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STREAMTOOLS_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	began := time.Now()
	devLog := filepath.Join(work, "dev.log")
	dev := startDocDev(t, filepath.Join(bin, "streamtools"), work, devLog, env, addr)
	t.Logf("streamtools dev ready in %v", time.Since(began).Round(time.Millisecond))
	blockEnv := append(env[:len(env):len(env)], "STREAMTOOLS_BROKERS="+addr["broker"])
	pgURL := "postgres://postgres@" + addr["postgres"] + "/streamtools"

	ran, notRun := 0, 0
	for _, f := range files {
		d, err := doccheck.Parse(filepath.Join(root, f))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, b := range d.Blocks {
			b.File = f
			switch {
			case b.Marker == doccheck.OutputOf:
				if b.Reason != "streamtools dev" {
					t.Errorf("%s: the test knows the output of streamtools dev only, not of %q", b, b.Reason)
					continue
				}
				log, _ := os.ReadFile(devLog)
				if err := matchOutput(string(log), b.Reason, strings.Split(rewrite(b.Text), "\n")); err != nil {
					t.Errorf("%s: streamtools dev's output: %v", b, err)
				}
			case b.Lang == "shell" || b.Lang == "console" || b.Lang == "zsh":
				t.Errorf("%s: label commands ```sh (```%s blocks would not run)", b, b.Lang)
			case !b.Shell() && b.Lang != "sql":
				if b.Marker != "" {
					t.Errorf("%s: marker %q on a block that does not run (```%s)", b, b.Marker, b.Lang)
				}
			case b.Marker == doccheck.NotRun:
				if b.Reason == "" {
					t.Errorf("%s: say why the block does not run: <!-- not run: why -->", b)
				}
				t.Logf("%s: not run: %s", b, b.Reason)
				notRun++
			case docsNotRun[f] != "":
				t.Logf("%s: not run: %s", b, docsNotRun[f])
				notRun++
			case b.Marker != "" && b.Marker != doccheck.Retried && b.Marker != doccheck.RunTwice:
				t.Errorf("%s: marker %q does not apply to a %s block", b, b.Marker, b.Lang)
			default:
				ran++
				runs := 1
				if b.Marker == doccheck.RunTwice {
					runs = 2
				}
				start := time.Now()
				for i := 0; i < runs; i++ {
					if err := runDocBlock(b, rewrite, work, blockEnv, pgURL); err != nil {
						t.Errorf("%s: %v", b, err)
						break
					}
				}
				if d := time.Since(start); d > time.Second {
					t.Logf("%s took %v", b, d.Round(time.Millisecond))
				}
			}
		}
	}
	t.Logf("ran %d blocks of %d files; %d not run (listed above)", ran, len(files), notRun)
	if ran == 0 {
		t.Error("no block ran")
	}

	// The README: "Stop dev with Ctrl-C: its components stop in order."
	if err := dev.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dev.done:
		if err != nil {
			t.Errorf("streamtools dev exited with %v after SIGINT; its log:\n%s", err, logTail(devLog))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("streamtools dev did not stop within 30 s of SIGINT; its log:\n%s", logTail(devLog))
	}
}

// docDev is the streamtools dev process of TestDocCommands.
type docDev struct {
	cmd  *exec.Cmd
	done chan error // receives cmd.Wait's result
}

// startDocDev starts streamtools dev (the binary bin) in dir on addr and
// waits for the edge to be ready. It is killed when the test ends, unless
// the test stopped it first.
func startDocDev(t *testing.T, bin, dir, logPath string, env []string, addr map[string]string) *docDev {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "dev",
		"--broker-listen", addr["broker"], "--ingest-listen", addr["ingest"],
		"--widgetd-listen", addr["widgetd"], "--dashboard-listen", addr["dashboard"],
		"--dashboard-widget-base-url", "http://"+addr["widgetd"],
		"--postgres-port", strings.TrimPrefix(addr["postgres"], "127.0.0.1:"))
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dev := &docDev{cmd: cmd, done: make(chan error, 1)}
	exited := make(chan struct{})
	go func() { dev.done <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("streamtools dev exited early; its log:\n%s", logTail(logPath))
		default:
		}
		// The banner comes once every component started; then the edge
		// must be ready for the first postback.
		if log, _ := os.ReadFile(logPath); bytes.Contains(log, []byte("is running (Ctrl-C stops it)")) {
			resp, err := http.Get("http://" + addr["ingest"] + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("streamtools dev not ready within 60 s; its log:\n%s", logTail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(logPath)
	if !bytes.Contains(log, []byte("postgres   postgres://")) {
		t.Fatalf("streamtools dev runs without Postgres, which the docs' commands need: "+
			"install the PostgreSQL server binaries (apt-get install postgresql); its log:\n%s", log)
	}
	return dev
}

// runDocBlock runs one block (a retried one until it passes, for up to 20
// s) and checks its exit status and expected output.
func runDocBlock(b doccheck.Block, rewrite func(string) string, dir string, env []string, pgURL string) error {
	script := rewrite(b.Text)
	want := b.Expected()
	for i := range want {
		want[i] = rewrite(want[i])
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var cmd *exec.Cmd
		if b.Lang == "sql" {
			cmd = exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", pgURL, "-c", script)
		} else {
			cmd = exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		}
		cmd.Dir, cmd.Env = dir, env
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil {
			err = matchOutput(string(out), script, want)
		} else {
			err = fmt.Errorf("%v; it printed:\n%s", err, out)
		}
		if err == nil || b.Marker != doccheck.Retried || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// matchOutput checks that every line of want matches a line of out, in
// order: "..." matches anything, and trailing spaces and CRs do not count.
// script names what printed out, for the error.
func matchOutput(out, script string, want []string) error {
	lines := strings.Split(strings.ReplaceAll(out, "\r", ""), "\n")
	i := 0
	for _, w := range want {
		w = strings.TrimRight(w, " \t")
		if w == "" {
			continue
		}
		parts := strings.Split(w, "...")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		re := regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
		for ; i < len(lines); i++ {
			if re.MatchString(strings.TrimRight(lines[i], " \t")) {
				break
			}
		}
		if i == len(lines) {
			return fmt.Errorf("no line (after those matched before) matches %q; the output of\n%s\nwas:\n%s",
				w, script, out)
		}
		i++
	}
	return nil
}

// logTail is the end of a log file, for failure messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func TestMatchOutput(t *testing.T) {
	const out = "HTTP/1.1 202 Accepted\r\nDate: x\r\n\r\n{\"id\":\"01a2\"}\n  a   |  b  \n(2 rows)\n"
	for _, tc := range []struct {
		name string
		want []string
		ok   bool
	}{
		{"in order, with a wildcard", []string{"HTTP/1.1 202 Accepted", `{"id":"..."}`}, true},
		{"trailing spaces do not count", []string{"  a   |  b", "(2 rows)"}, true},
		{"leading spaces do", []string{"a   |  b"}, false},
		{"whole lines only", []string{"202 Accepted"}, false},
		{"out of order", []string{`{"id":"..."}`, "HTTP/1.1 202 Accepted"}, false},
		{"one line matches once", []string{"(2 rows)", "(2 rows)"}, false},
		{"regexp characters are literal", []string{"HTTP/1.1 202 Accepte."}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := matchOutput(out, "cmd", tc.want); (err == nil) != tc.ok {
				t.Errorf("matchOutput(%q) = %v, want ok %v", tc.want, err, tc.ok)
			}
		})
	}
}
