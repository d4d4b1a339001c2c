package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
)

// TestDashboardUsersHelp: the help of a users command lists its own flags,
// not the dashboard server's.
func TestDashboardUsersHelp(t *testing.T) {
	out := mustRun(t, "dashboard", "users", "create", "--help")
	for _, want := range []string{"--customer", "--login", "--password-stdin", "--database-url", "--data-dir", "--brokers"} {
		if !strings.Contains(out, want) {
			t.Errorf("users create --help lacks %s:\n%s", want, out)
		}
	}
	for _, not := range []string{"GLOBAL OPTIONS", "--listen", "--widget-base-url", "--cookie-secure", "--session-ttl", "--log-level"} {
		if strings.Contains(out, not) {
			t.Errorf("users create --help shows %q, a flag of the dashboard server:\n%s", not, out)
		}
	}
	// The server keeps its flags.
	if out := mustRun(t, "dashboard", "--help"); !strings.Contains(out, "--listen") || !strings.Contains(out, "--cookie-secure") {
		t.Errorf("dashboard --help lost the server's flags:\n%s", out)
	}
}

// TestDevDashboard: with `streamtools dev` running, `dashboard users`
// needs no --database-url nor --brokers (it reads what dev wrote in its data
// directory), STREAMTOOLS_DATABASE_URL wins over that and --database-url
// over both, a customer that does not exist is refused, and the commands
// that dev and `users create` print work as typed; the dashboard knows the
// products' widget settings from the customers topic, and links widgets to
// widgetd where dev runs it. Every command runs as its own process, as a
// user runs them (and as flags read their environment variables once per
// process).
func TestDevDashboard(t *testing.T) {
	dataDir := postgresTempDir(t)
	ports := devPorts(t)
	brokers := fmt.Sprintf("127.0.0.1:%d", ports["broker"])
	devURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/streamtools?sslmode=disable", ports["postgres"])
	urlFile := filepath.Join(dataDir, "database-url")
	brokersFile := filepath.Join(dataDir, "brokers")
	// A STREAMTOOLS_* variable of whoever runs the tests would change what
	// dev and the commands do.
	environ := environWithoutPrefix("STREAMTOOLS_")

	dev := exec.Command(os.Args[0], "-test.run=^$")
	args, _ := json.Marshal([]string{"dev", "--data-dir", dataDir, "--log-level", "warn",
		"--broker-listen", brokers,
		"--ingest-listen", fmt.Sprintf("127.0.0.1:%d", ports["ingest"]),
		"--widgetd-listen", fmt.Sprintf("127.0.0.1:%d", ports["widgetd"]),
		"--dashboard-listen", fmt.Sprintf("127.0.0.1:%d", ports["dashboard"]),
		"--postgres-port", fmt.Sprint(ports["postgres"])})
	dev.Env = append(environ, envChildArgs+"="+string(args))
	devOut := &testrun.Buffer{}
	dev.Stdout, dev.Stderr = devOut, devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	devDone := make(chan error, 1)
	go func() { devDone <- dev.Wait() }()
	stopDev := func() {
		if dev.Process == nil {
			return
		}
		dev.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-devDone:
			if err != nil {
				t.Errorf("dev exited with %v:\n%s", err, devOut.String())
			}
		case <-time.After(60 * time.Second):
			dev.Process.Kill()
			t.Errorf("dev did not stop within 60s:\n%s", devOut.String())
		}
		dev.Process = nil
	}
	t.Cleanup(stopDev)
	kafkatest.Eventually(t, 90*time.Second, "dev to run", func() bool {
		select {
		case err := <-devDone:
			dev.Process = nil
			t.Fatalf("dev stopped early (%v):\n%s", err, devOut.String())
		default:
		}
		return strings.Contains(devOut.String(), "is running (Ctrl-C stops it)")
	})
	for file, want := range map[string]string{urlFile: devURL, brokersFile: brokers} {
		if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("dev's %s holds %q (%v), want %q", file, b, err, want)
		}
	}

	// streamtools runs `streamtools args...` in its own process, with
	// STREAMTOOLS_DATABASE_URL set to dbEnv unless it is empty.
	streamtools := func(dbEnv string, args ...string) (string, error) {
		t.Helper()
		b, _ := json.Marshal(args)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(environ, envChildArgs+"="+string(b))
		if dbEnv != "" {
			cmd.Env = append(cmd.Env, "STREAMTOOLS_DATABASE_URL="+dbEnv)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		return string(out), err
	}
	// users runs `streamtools dashboard users args... --data-dir dataDir`.
	users := func(dbEnv string, args ...string) (string, error) {
		t.Helper()
		return streamtools(dbEnv, append(append([]string{"dashboard", "users"}, args...), "--data-dir", dataDir)...)
	}
	// typed runs a command that streamtools printed for the user to run.
	typed := func(command string) (string, error) {
		t.Helper()
		words := strings.Fields(command)
		if len(words) < 2 || words[0] != "streamtools" || strings.ContainsAny(command, `'"$\`) {
			t.Fatalf("%q is no streamtools command this test can run", command)
		}
		return streamtools("", words[1:]...)
	}

	// The customers topic is on dev's broker, which the operator commands
	// find through --data-dir.
	if list, err := streamtools("", "customers", "list", "--data-dir", dataDir); err != nil || !strings.Contains(list, "Demo brand") {
		t.Errorf("customers list --data-dir, without --brokers: %v\n%s", err, list)
	}
	// So do replay's topics and database: a postback the sink has written
	// reads back as unchanged (inserted, had replay read another database).
	postback(t, ports["ingest"], exampleBody)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := streamtools("", "replay", "--dry-run", "--data-dir", dataDir)
		if err == nil && strings.Contains(out, "events       inserted 0, updated 0, unchanged 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay --dry-run --data-dir, without --brokers nor --database-url, did not find dev's event in dev's database within 60s: %v\n%s", err, out)
		}
	}
	if _, err := users("", "create", "--customer", "acme", "--login", "x@acme.example"); err == nil ||
		!strings.Contains(err.Error(), `--customer "acme" does not exist`) || !strings.Contains(err.Error(), "customers set --code acme") {
		t.Fatalf("a login for a customer that does not exist: err = %v, want one that says how to create the customer", err)
	}
	out, err := users("", "create", "--customer", "default", "--login", "marketing@demo.example")
	if err != nil || !strings.Contains(out, "created login marketing@demo.example for customer default") || !strings.Contains(out, "password: ") {
		t.Fatalf("users create in dev, without --database-url: %v\n%s", err, out)
	}
	reset := regexp.MustCompile("`(streamtools dashboard users reset-password [^`]*)` makes a new one").FindStringSubmatch(out)
	if reset == nil {
		t.Fatalf("users create does not say, as a streamtools command, how to make a new password:\n%s", out)
	}
	if out, err := typed(reset[1]); err != nil || !strings.Contains(out, "password of marketing@demo.example changed") {
		t.Errorf("%s, as printed: %v\n%s", reset[1], err, out)
	}
	_, err = users("", "create", "--customer", "default", "--login", "marketing@demo.example")
	if err == nil || !strings.Contains(err.Error(), "(use `"+reset[1]+"`)") {
		t.Errorf("a login that exists: err = %v, want one that says to use %s", err, reset[1])
	}
	// dev's banner says how to make more logins.
	more := regexp.MustCompile(`more logins: (streamtools dashboard users create [^)]*)\)`).FindStringSubmatch(devOut.String())
	if more == nil {
		t.Fatalf("dev's banner does not say how to make more logins:\n%s", devOut)
	}
	if out, err := typed(more[1]); err != nil || !strings.Contains(out, "created login you@example.com for customer default") {
		t.Errorf("%s, as the banner prints it: %v\n%s", more[1], err, out)
	}

	// The variable wins over dev's file, and the flag over the variable.
	const nowhere = "postgres://postgres@127.0.0.1:1/streamtools?sslmode=disable&connect_timeout=2"
	if out, err := users(nowhere, "list"); err == nil {
		t.Fatalf("users list read dev's database, not STREAMTOOLS_DATABASE_URL:\n%s", out)
	}
	list, err := users(nowhere, "list", "--customer", "default", "--database-url", devURL)
	if err != nil || !strings.Contains(list, "marketing@demo.example") || strings.Contains(list, "x@acme.example") {
		t.Fatalf("users list --database-url: %v\n%s", err, list)
	}

	// The dashboard reads the demo product's widget settings.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	dash := fmt.Sprintf("http://127.0.0.1:%d", ports["dashboard"])
	password, err := os.ReadFile(filepath.Join(dataDir, "dashboard-demo-password"))
	if err != nil {
		t.Fatal(err)
	}
	login, _ := json.Marshal(map[string]string{"login": "demo", "password": strings.TrimSpace(string(password))})
	resp, err := hc.Post(dash+"/api/v1/login", "application/json", bytes.NewReader(login))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("logging in as demo: %d", resp.StatusCode)
	}
	resp, err = hc.Get(dash + "/api/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	var me struct {
		WidgetBaseURL string `json:"widget_base_url"`
	}
	err = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if want := fmt.Sprintf("http://127.0.0.1:%d", ports["widgetd"]); err != nil || me.WidgetBaseURL != want {
		t.Errorf("the dashboard links widgets to %q (%v), want %q: widgetd's address in dev", me.WidgetBaseURL, err, want)
	}
	kafkatest.Eventually(t, 30*time.Second, "the dashboard to know the demo product's widget", func() bool {
		resp, err := hc.Get(dash + "/api/v1/widgets")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `"known":true`) && strings.Contains(string(b), `"product":"product","title":"Sign-ups","goal":100`)
	})

	// Once dev stops, its database and broker are gone, and so are the
	// files.
	stopDev()
	for _, file := range []string{urlFile, brokersFile} {
		if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("dev left %s behind: %v", file, err)
		}
	}
	if _, err := users("", "list"); err == nil || !strings.Contains(err.Error(), "--database-url") {
		t.Errorf("users list without dev nor --database-url: err = %v, want one that asks for --database-url", err)
	}
	if _, err := streamtools("", "replay", "--dry-run", "--data-dir", dataDir); err == nil || !strings.Contains(err.Error(), "--database-url") {
		t.Errorf("replay without dev nor --database-url: err = %v, want one that asks for --database-url", err)
	}
}
