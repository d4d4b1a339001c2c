// Package pgembed starts a PostgreSQL cluster from the locally installed
// server binaries (initdb and postgres, found on PATH or under
// /usr/lib/postgresql/*/bin). `streamtools dev` uses it with a persistent
// directory inside its data directory; internal/pgtest uses it with a
// temporary directory, one cluster per test package.
//
// It does not download PostgreSQL and does not manage production servers: those
// are reached with a connection string (--database-url).
//
// initdb and postgres refuse to run as root. When the effective user is root
// (sessions, CI, containers), the cluster runs as the `postgres` system user
// in a directory that user owns; on a normal user's machine it runs as that
// user.
package pgembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamtools/streamtools/internal/freeport"
)

// ErrNoBinaries is returned when no PostgreSQL server binaries are installed.
var ErrNoBinaries = errors.New("pgembed: no PostgreSQL server binaries (initdb, postgres) on PATH or under /usr/lib/postgresql/*/bin: install them, e.g. `apt-get install postgresql`")

// Superuser is the name of the cluster's superuser (initdb -U).
const Superuser = "postgres"

// Config configures a cluster.
type Config struct {
	// Dir holds the cluster: Dir/data is PGDATA, Dir/postgres.log the
	// server log. A Dir without Dir/data/PG_VERSION gets a new cluster
	// (initdb); an existing one is reused. Required.
	Dir string
	// BinDir holds initdb and postgres. Empty: FindBinDir.
	BinDir string
	// Port to listen on, on 127.0.0.1. 0 picks a free port.
	Port int
	// SocketDir is the Unix socket directory. Empty: no Unix socket (TCP
	// only), so that the cluster never collides with a system server's
	// /var/run/postgresql.
	SocketDir string
	// Ephemeral trades durability for speed (initdb --no-sync, fsync=off,
	// synchronous_commit=off, full_page_writes=off): for tests only.
	Ephemeral bool
	// Database is created at start when missing. Empty: none.
	Database string
	// MaxConnections is the server's max_connections. 0 means 200.
	MaxConnections int
	// StartTimeout bounds how long Start waits for the server to accept
	// connections. 0 means 60 s.
	StartTimeout time.Duration
	// Log receives progress lines. nil discards them.
	Log *slog.Logger
}

// Validate names the field to fix.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("pgembed: Config.Dir is empty: set the directory that holds the cluster")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("pgembed: Config.Port %d: use 0 (a free port) or 1-65535", c.Port)
	}
	return nil
}

// Cluster is a running (or stopped) PostgreSQL cluster.
type Cluster struct {
	cfg    Config
	bin    string
	dir    string // absolute
	log    *slog.Logger
	cred   *syscall.Credential // nil when not root
	port   int
	mu     sync.Mutex // guards cmd, exited and exit
	cmd    *exec.Cmd
	exited chan struct{} // closed once the postmaster exited
	exit   *error        // what cmd.Wait returned; read it once exited is closed
}

// FindBinDir returns the directory that holds initdb and postgres: the one
// of initdb on PATH, else the newest /usr/lib/postgresql/<version>/bin (or a
// few other usual places), else ErrNoBinaries.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	var candidates []string
	for _, pattern := range []string{
		"/usr/lib/postgresql/*/bin",
		"/usr/pgsql-*/bin",
		"/usr/local/opt/postgresql*/bin",
		"/opt/homebrew/opt/postgresql*/bin",
		"/usr/local/pgsql/bin",
	} {
		m, _ := filepath.Glob(pattern) // the patterns are constant and valid
		candidates = append(candidates, m...)
	}
	// Newest major version first: compare the first number in the path.
	sort.SliceStable(candidates, func(i, j int) bool { return version(candidates[i]) > version(candidates[j]) })
	for _, dir := range candidates {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func version(path string) int {
	var digits strings.Builder
	for _, r := range path {
		if r >= '0' && r <= '9' {
			digits.WriteRune(r)
		} else if digits.Len() > 0 {
			break
		}
	}
	n, _ := strconv.Atoi(digits.String())
	return n
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start creates the cluster if needed and starts the server. Stop or Close
// it when done; if this process dies, the server is killed with it.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 200
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	c := &Cluster{cfg: cfg, log: cfg.Log}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var err error
	if c.bin = cfg.BinDir; c.bin == "" {
		if c.bin, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if !isExec(filepath.Join(c.bin, "initdb")) || !isExec(filepath.Join(c.bin, "postgres")) {
		return nil, fmt.Errorf("BinDir %s holds no initdb and postgres: %w", c.bin, ErrNoBinaries)
	}
	if c.dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("pgembed: resolving Dir %s: %w", cfg.Dir, err)
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	c.port = cfg.Port
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if cfg.Database != "" {
		if err := c.CreateDatabase(ctx, cfg.Database); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// LogPath is the server log file.
func (c *Cluster) LogPath() string { return filepath.Join(c.dir, "postgres.log") }

// prepareDirs creates Dir (and SocketDir) and, when running as root, hands
// them to the postgres user and checks that it can reach them.
func (c *Cluster) prepareDirs() error {
	dirs := []string{c.dir}
	if c.cfg.SocketDir != "" {
		dirs = append(dirs, c.cfg.SocketDir)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("pgembed: creating %s: %w", d, err)
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(Superuser)
	if err != nil {
		return fmt.Errorf("pgembed: running as root, and initdb/postgres refuse root: looking up the %q system user: %w (install the postgresql package, which creates it, or run as a normal user)", Superuser, err)
	}
	uid, _ := strconv.Atoi(u.Uid) // numeric on Unix
	gid, _ := strconv.Atoi(u.Gid)
	c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	for _, d := range dirs {
		err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return fmt.Errorf("pgembed: handing %s to the %s user: %w", d, Superuser, err)
		}
		// Every parent must be searchable by the postgres user.
		for p := filepath.Dir(d); ; p = filepath.Dir(p) {
			st, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("pgembed: checking %s: %w", p, err)
			}
			owned := false
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == uid {
				owned = true
			}
			if !owned && st.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("pgembed: the %s user cannot enter %s (mode %v), which holds the cluster directory %s: chmod o+x it or choose another directory", Superuser, p, st.Mode().Perm(), d)
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return nil
}

// command builds a command that runs as the postgres user when root.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	} else {
		cmd = exec.Command(filepath.Join(c.bin, name), args...)
	}
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

func (c *Cluster) initdb(ctx context.Context) error {
	start := time.Now()
	args := []string{"-D", c.dataDir(), "-U", Superuser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-instructions"}
	if c.cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	out, err := c.command(ctx, "initdb", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgembed: running initdb in %s: %w\n%s", c.dataDir(), err, out)
	}
	c.log.Info("postgres cluster created", "dir", c.dataDir(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Start starts the server of a stopped cluster on the same port (the fault
// tests stop and start it). It waits until the server accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := c.port
		if c.cfg.Port == 0 && port == 0 {
			p, err := freeport.Get()
			if err != nil {
				return err
			}
			port = p
		}
		err := c.startOn(ctx, port)
		if err == nil {
			c.port = port
			return nil
		}
		lastErr = err
		if c.cfg.Port != 0 || c.port != 0 || ctx.Err() != nil {
			break // a fixed port, or a restart: do not move
		}
	}
	return lastErr
}

func (c *Cluster) startOn(ctx context.Context, port int) error {
	logf, err := os.OpenFile(c.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgembed: opening the server log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	args := []string{
		"-D", c.dataDir(),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + c.cfg.SocketDir,
		"-c", "max_connections=" + strconv.Itoa(c.cfg.MaxConnections),
		"-c", "timezone=UTC",
	}
	if c.cfg.Ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := c.command(nil, "postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If this process dies, take the server with it (immediate shutdown).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgembed: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	exit := new(error)
	go func() { *exit = cmd.Wait(); close(exited) }()
	url := urlFor(port, "postgres")
	deadline := time.Now().Add(c.cfg.StartTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(pctx, url)
		cancel()
		if err == nil {
			conn.Close(ctx)
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("pgembed: postgres exited at start on port %d (%v); its log, %s, ends with:\n%s", port, *exit, c.LogPath(), tail(c.LogPath()))
		default:
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-exited
			return fmt.Errorf("pgembed: waiting for postgres on port %d: %w; its log, %s, ends with:\n%s", port, errors.Join(ctx.Err(), err), c.LogPath(), tail(c.LogPath()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.cmd, c.exited, c.exit = cmd, exited, exit
	c.log.Info("postgres started", "port", port, "dir", c.dataDir())
	return nil
}

// Stop shuts the server down (fast shutdown: open sessions are cut, the
// data is kept) and waits for it to exit. Safe to call twice.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	cmd, exited, exit := c.cmd, c.exited, c.exit
	c.cmd, c.exited, c.exit = nil, nil, nil
	select {
	case <-exited:
		if *exit != nil {
			return fmt.Errorf("pgembed: postgres had exited on its own (%w); its log, %s, ends with:\n%s", *exit, c.LogPath(), tail(c.LogPath()))
		}
		return nil
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgembed: stopping postgres: %w", err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.log.Warn("postgres did not stop within 30s of SIGINT: sending SIGQUIT (immediate shutdown)", "port", c.port)
		if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("pgembed: stopping postgres with SIGQUIT: %w", err)
		}
		<-exited
	}
	if *exit != nil {
		return fmt.Errorf("pgembed: stopping postgres: %w", *exit)
	}
	c.log.Info("postgres stopped", "port", c.port)
	return nil
}

// Kill kills the server's postmaster with SIGKILL, as a crash would, and
// waits for it to exit; its backends notice and exit on their own. Start
// brings it back (crash recovery). For fault tests. Safe to call twice.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Kill() // os.ErrProcessDone at worst: it died already
	<-c.exited               // Wait's error is "signal: killed", as asked
	c.cmd, c.exited, c.exit = nil, nil, nil
	c.log.Info("postgres killed", "port", c.port)
}

// Close stops the server and, when remove is true, deletes Dir.
func (c *Cluster) Close(remove bool) error {
	err := c.Stop()
	if remove {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	return err
}

// Port is the TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// URL is the connection string of database db as the superuser.
func (c *Cluster) URL(db string) string { return urlFor(c.port, db) }

func urlFor(port int, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, port, db)
}

// CreateDatabase creates db unless it exists.
func (c *Cluster) CreateDatabase(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: connecting: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("pgembed: looking up database %s: %w", db, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("pgembed: creating database %s: %w", db, err)
	}
	return nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
