// Package pgtest gives tests a real, throwaway PostgreSQL: one cluster per
// test package, started from the locally installed server binaries (see
// internal/pgembed) on a random port in a temporary directory, and a fresh
// database per test. There is no mock: tests talk to a real server.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.NewDatabase(t) // dropped when the test ends
//		...
//	}
//
// A test that stops the server (a fault test) should use its own cluster,
// NewCluster(t), so that it does not disturb the other tests of its package;
// Shared() gives the package's cluster for the rare test that must stop it.
//
// PGTEST_VERBOSE=1 prints the port and start time of the package's cluster.
//
// Without PostgreSQL server binaries the tests fail (they never skip) with a
// message that says how to install them (apt-get install postgresql).
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamtools/streamtools/internal/pgembed"
)

var (
	mu     sync.Mutex
	shared *pgembed.Cluster // guarded by mu; set by Main
	seq    atomic.Int64
)

// Main starts the package's cluster, runs the tests, stops the cluster,
// removes its directory and exits with the tests' status.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: creating a temporary directory:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	c, err := startIn(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 2
	}
	if os.Getenv("PGTEST_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "pgtest: postgres on 127.0.0.1:%d (started in %v)\n", c.Port(), time.Since(start).Round(time.Millisecond))
	}
	mu.Lock()
	shared = c
	mu.Unlock()
	defer c.Close(true)
	return m.Run()
}

func startIn(dir string) (*pgembed.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return pgembed.Start(ctx, pgembed.Config{
		Dir:       dir,
		SocketDir: filepath.Join(dir, "sock"),
		Ephemeral: true,
	})
}

// Shared returns the package's cluster started by Main, e.g. to Stop and
// Start it. It fails the test when Main was not called.
func Shared(t testing.TB) *pgembed.Cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared == nil {
		t.Fatal("pgtest: no cluster: call pgtest.Main(m) from the package's TestMain")
	}
	return shared
}

// NewDatabase creates an empty database on the package's cluster and
// returns its URL; the database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, Shared(t))
}

// NewCluster starts a cluster of the test's own (about 1 s), stopped and
// removed when the test ends, and returns it with the URL of a fresh
// database on it. Use it for tests that stop or restart the server.
func NewCluster(t testing.TB) (*pgembed.Cluster, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: creating a temporary directory: %v", err)
	}
	c, err := startIn(dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(true); err != nil {
			t.Errorf("pgtest: closing cluster: %v", err)
		}
	})
	return c, newDatabase(t, c)
}

func newDatabase(t testing.TB, c *pgembed.Cluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), seq.Add(1))
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			// The test may have left the server stopped; it goes away with
			// the cluster's directory.
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return c.URL(name)
}
