package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/schemas"
)

func TestNeededDays(t *testing.T) {
	now := time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)
	got := neededDays(now)
	want := []string{"2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03"}
	if !slices.Equal(got, want) {
		t.Fatalf("neededDays = %v, want %v", got, want)
	}
	// Every time zone's "today" is among them, at any instant.
	for _, tz := range []string{"Pacific/Kiritimati", "Etc/GMT+12", "Europe/Paris", "America/Los_Angeles"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		for h := 0; h < 48; h++ {
			at := now.Add(time.Duration(h) * time.Hour)
			if d := schemas.DayOf(at, loc); !slices.Contains(neededDays(at), d) {
				t.Errorf("%s at %v: day %s not among %v", tz, at, d, neededDays(at))
			}
		}
	}
}

type saltEnv struct {
	addr  string
	topic string
	prod  *kgo.Client
}

func newSaltEnv(t *testing.T) saltEnv {
	b := kafkatest.Start(t, "")
	names := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), names, 1)
	return saltEnv{addr: b.Addr(), topic: names.Salts(), prod: kafkatest.Client(t, b.Addr())}
}

// start runs a salts manager whose clock says now.
func (e saltEnv) start(t *testing.T, now time.Time) *salts {
	s, err := newSalts([]string{e.addr}, e.prod, e.topic, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	testrun.Start(t, "salts Run", s.Run)
	return s
}

func (e saltEnv) put(t *testing.T, day string, salt []byte) {
	t.Helper()
	s := &salts{producer: e.prod, topic: e.topic}
	var rec *schemas.Salt
	if salt != nil {
		rec = &schemas.Salt{V: 1, Day: day, Salt: salt, CreatedAt: time.Now().UTC()}
	}
	if err := s.write(context.Background(), day, rec); err != nil {
		t.Fatal(err)
	}
}

// latest returns the last value per day in the topic (what compaction keeps).
func (e saltEnv) latest(t *testing.T, want int) map[string][]byte {
	recs := kafkatest.ReadAll(t, e.addr, e.topic, want, 10*time.Second)
	out := map[string][]byte{}
	for _, r := range recs {
		if r.Value == nil {
			out[string(r.Key)] = nil
			continue
		}
		v, err := schemas.SaltCodec.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out[string(r.Key)] = v.(*schemas.Salt).Salt
	}
	return out
}

func fill(b byte) []byte { return bytes.Repeat([]byte{b}, SaltSize) }

// TestSaltsCreated: a lone edge on an empty topic creates the four days.
func TestSaltsCreated(t *testing.T) {
	e := newSaltEnv(t)
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	s := e.start(t, now)
	<-s.Ready()
	want := []string{"2026-05-09", "2026-05-10", "2026-05-11", "2026-05-12"}
	if got := s.known(); !slices.Equal(got, want) {
		t.Fatalf("known %v, want %v", got, want)
	}
	a, _ := s.get("2026-05-10")
	// A second edge adopts the same salts instead of writing its own.
	s2 := e.start(t, now)
	<-s2.Ready()
	b, _ := s2.get("2026-05-10")
	if !bytes.Equal(a, b) || len(a) != SaltSize || bytes.Equal(a, make([]byte, SaltSize)) {
		t.Fatalf("two edges use different or empty salts: %x, %x", a, b)
	}
}

// TestSaltsConverge: when two salts race for a day, every edge ends on the
// smaller one, and the topic's last record for the day is the smaller one
// (so compaction keeps it), even when the larger one was written last.
func TestSaltsConverge(t *testing.T) {
	e := newSaltEnv(t)
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	day := "2026-05-10"
	e.put(t, day, fill(0x10)) // the smaller first
	e.put(t, day, fill(0x90)) // then a larger one, as a racing edge would
	a := e.start(t, now)
	b := e.start(t, now)
	<-a.Ready()
	<-b.Ready()
	for _, s := range []*salts{a, b} {
		if got, _ := s.get(day); !bytes.Equal(got, fill(0x10)) {
			t.Fatalf("an edge uses salt %x, want the smaller %x", got, fill(0x10))
		}
	}
	kafkatest.Eventually(t, 10*time.Second, "the smaller salt re-published last", func() bool {
		return bytes.Equal(e.latest(t, 1)[day], fill(0x10))
	})
	// A smaller salt arriving later wins on every running edge.
	e.put(t, day, fill(0x01))
	kafkatest.Eventually(t, 10*time.Second, "edges adopting the smaller salt", func() bool {
		x, _ := a.get(day)
		y, _ := b.get(day)
		return bytes.Equal(x, fill(0x01)) && bytes.Equal(y, fill(0x01))
	})
}

// TestSaltsTombstoned: salts of days before UTC yesterday are deleted with
// tombstones, and forgotten by every edge.
func TestSaltsTombstoned(t *testing.T) {
	e := newSaltEnv(t)
	e.put(t, "2026-05-07", fill(0x20))
	e.put(t, "2026-05-08", fill(0x21))
	e.put(t, "2026-05-09", fill(0x22)) // UTC yesterday: kept
	now := time.Date(2026, 5, 10, 0, 30, 0, 0, time.UTC)
	s := e.start(t, now)
	<-s.Ready()
	kafkatest.Eventually(t, 10*time.Second, "old days forgotten", func() bool {
		return slices.Equal(s.known(), []string{"2026-05-09", "2026-05-10", "2026-05-11", "2026-05-12"})
	})
	if got, _ := s.get("2026-05-09"); !bytes.Equal(got, fill(0x22)) {
		t.Errorf("yesterday's salt was replaced")
	}
	latest := e.latest(t, 3+3+2) // 3 puts, 3 new days, 2 tombstones
	for _, d := range []string{"2026-05-07", "2026-05-08"} {
		if v, ok := latest[d]; !ok || v != nil {
			t.Errorf("day %s: last record %x, want a tombstone", d, v)
		}
	}
	// The next day, the hourly check deletes 2026-05-09 and adds 2026-05-13.
	s.mu.Lock()
	s.now = func() time.Time { return now.Add(24 * time.Hour) }
	s.mu.Unlock()
	if err := s.ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 10*time.Second, "the window moving a day", func() bool {
		return slices.Equal(s.known(), []string{"2026-05-10", "2026-05-11", "2026-05-12", "2026-05-13"})
	})
}

// TestSaltWait: a request for a day without a salt waits, bounded, and gets
// errNoSalt rather than a fingerprint under another key.
func TestSaltWait(t *testing.T) {
	e := newSaltEnv(t)
	s := e.start(t, time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC))
	<-s.Ready()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.wait(ctx, "2030-01-01"); err != errNoSalt {
		t.Fatalf("wait for an unknown day: %v, want errNoSalt", err)
	}
	type waited struct {
		salt []byte
		err  error
	}
	got := make(chan waited, 1)
	go func() {
		b, err := s.wait(context.Background(), "2030-01-02")
		got <- waited{b, err}
	}()
	e.put(t, "2030-01-02", fill(0x33))
	if w := <-got; w.err != nil || !bytes.Equal(w.salt, fill(0x33)) {
		t.Fatalf("waiter got %x, %v", w.salt, w.err)
	}
}

func TestFingerprint(t *testing.T) {
	salt := fill(1)
	a := Fingerprint(salt, "default", "1.2.3.4", "UA")
	if len(a) != 64 || a == Fingerprint(fill(2), "default", "1.2.3.4", "UA") ||
		a == Fingerprint(salt, "other", "1.2.3.4", "UA") || a != Fingerprint(salt, "default", "1.2.3.4", "UA") {
		t.Fatal("the fingerprint must depend on the salt and the customer, and be deterministic")
	}
}
