package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// SaltSize is the size of a daily salt in bytes.
const SaltSize = 32

// errNoSalt means no salt is known for a day within the wait bound.
var errNoSalt = errors.New("ingest: no visitor-fingerprint salt is known for the day yet")

// salts keeps the daily visitor-fingerprint salts, shared by every edge
// instance through the compacted salts topic (schemas.Names.Salts, Salt
// records keyed by day). See docs/edge.md, "Visitor fingerprint and daily salts".
//
//   - Every edge tails the topic from the start into memory.
//   - Once caught up, and every CheckEvery, it writes a fresh random salt for
//     each UTC date from yesterday to the day after tomorrow that has none:
//     together they cover "today" in every time zone (UTC-12 to UTC+14).
//   - When two edges race, the salt with the smallest bytes wins: every edge
//     keeps the smallest salt it has seen for a day, and an edge that reads a
//     larger salt after a smaller one re-publishes the smaller one, so the
//     compacted log converges on it.
//   - Days older than UTC yesterday are over in every time zone: their salts
//     are deleted with tombstones, so no salt lives much beyond 48 hours.
//
// Salts are random, never derived from a long-lived secret: once a salt is
// deleted, nobody can recompute fingerprints by brute force over the IPv4
// space.
type salts struct {
	consumer *kgo.Client // tails the topic
	producer *kgo.Client // writes salts and tombstones
	topic    string
	log      *slog.Logger
	every    time.Duration
	now      func() time.Time // UTC; replaced in tests

	mu      sync.RWMutex
	days    map[string][]byte     // day -> smallest salt seen; guarded by mu
	macs    map[string]*sync.Pool // day -> keyed HMAC-SHA256 states of days[day]; guarded by mu
	changed chan struct{}         // closed and replaced on every change; guarded by mu

	ready     chan struct{}
	readyOnce sync.Once
}

func newSalts(brokers []string, producer *kgo.Client, topic string, every time.Duration, log *slog.Logger, opts ...kgo.Opt) (*salts, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("ingest: creating the salts consumer: %w", err)
	}
	return &salts{
		consumer: cl, producer: producer, topic: topic, log: log, every: every,
		now:     func() time.Time { return time.Now().UTC() },
		days:    map[string][]byte{},
		macs:    map[string]*sync.Pool{},
		changed: make(chan struct{}),
		ready:   make(chan struct{}),
	}, nil
}

// Ready is closed once the salts of the days around now are known.
func (s *salts) Ready() <-chan struct{} { return s.ready }

// Run tails the topic and maintains the salts until ctx is done.
func (s *salts) Run(ctx context.Context) error {
	defer s.consumer.Close()
	var end int64
	for {
		var err error
		if end, err = tenant.EndOffset(ctx, s.consumer, s.topic); err == nil {
			break
		}
		s.log.Warn("reading the end of the salts topic; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	caughtUp := make(chan struct{})
	var caughtOnce sync.Once
	if end == 0 {
		caughtOnce.Do(func() { close(caughtUp) })
	}
	go s.maintain(ctx, caughtUp)
	for {
		fs := s.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("reading the salts topic", "partition", p, "err", err)
		})
		var republish []schemas.Salt
		fs.EachRecord(func(r *kgo.Record) {
			if keep := s.apply(r); keep != nil {
				republish = append(republish, *keep)
			}
			if r.Offset+1 >= end {
				caughtOnce.Do(func() { close(caughtUp) })
			}
		})
		for _, salt := range republish {
			s.log.Info("re-publishing the smaller salt of a day so that every edge converges on it", "day", salt.Day)
			if err := s.write(ctx, salt.Day, &salt); err != nil {
				s.log.Warn("re-publishing a salt", "day", salt.Day, "err", err)
			}
		}
	}
}

// maintain creates missing salts and deletes old ones once caught up, then
// every s.every.
func (s *salts) maintain(ctx context.Context, caughtUp <-chan struct{}) {
	select {
	case <-caughtUp:
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		if err := s.ensure(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("maintaining the daily salts; retrying soon", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// neededDays are the UTC dates yesterday .. the day after tomorrow.
func neededDays(now time.Time) []string {
	now = now.UTC()
	out := make([]string, 0, 4)
	for d := -1; d <= 2; d++ {
		out = append(out, now.AddDate(0, 0, d).Format(schemas.DayLayout))
	}
	return out
}

// ensure writes a salt for each needed day that has none, tombstones days
// that are over everywhere, and waits until the needed days are known.
func (s *salts) ensure(ctx context.Context) error {
	now := s.now()
	need := neededDays(now)
	oldest := need[0] // UTC yesterday; anything before is over everywhere
	s.mu.RLock()
	var missing, expired []string
	for _, d := range need {
		if _, ok := s.days[d]; !ok {
			missing = append(missing, d)
		}
	}
	for d := range s.days {
		if d < oldest {
			expired = append(expired, d)
		}
	}
	s.mu.RUnlock()
	sort.Strings(expired)
	for _, d := range missing {
		salt := schemas.Salt{V: schemas.SaltVersion, Day: d, Salt: make([]byte, SaltSize), CreatedAt: now}
		if _, err := rand.Read(salt.Salt); err != nil {
			return fmt.Errorf("reading random bytes: %w", err)
		}
		if err := s.write(ctx, d, &salt); err != nil {
			return err
		}
	}
	for _, d := range expired {
		if err := s.write(ctx, d, nil); err != nil {
			return err
		}
		s.log.Debug("deleted the salt of a day that is over everywhere", "day", d)
	}
	// Use only salts read back from the topic, never the one just written:
	// another edge may have raced us with a smaller one.
	for _, d := range need {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := s.wait(wctx, d)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for the salt of %s to come back from the topic: %w", d, err)
		}
	}
	s.readyOnce.Do(func() { close(s.ready) })
	return nil
}

// write produces a salt, or a tombstone when salt is nil.
func (s *salts) write(ctx context.Context, day string, salt *schemas.Salt) error {
	rec := &kgo.Record{Topic: s.topic, Key: []byte(day)}
	if salt != nil {
		b, err := schemas.SaltCodec.Encode(salt)
		if err != nil {
			return err
		}
		rec.Value = b
	}
	if err := s.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("writing the salt of %s: %w", day, err)
	}
	return nil
}

// apply updates the map with one record. It returns the salt to re-publish
// when the record carried a larger salt than the one kept for its day.
func (s *salts) apply(r *kgo.Record) *schemas.Salt {
	day := string(r.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Value == nil {
		if _, ok := s.days[day]; ok {
			delete(s.days, day)
			delete(s.macs, day)
			s.notifyLocked()
		}
		return nil
	}
	v, err := schemas.SaltCodec.Decode(r.Value)
	if err != nil {
		s.log.Warn("skipping an undecodable salt record", "day", day, "err", err)
		return nil
	}
	salt := v.(*schemas.Salt)
	if len(salt.Salt) != SaltSize || salt.Day != day {
		s.log.Warn("skipping a malformed salt record", "day", day, "size", len(salt.Salt))
		return nil
	}
	old, ok := s.days[day]
	switch {
	case !ok || bytes.Compare(salt.Salt, old) < 0:
		s.days[day] = salt.Salt
		key := salt.Salt
		s.macs[day] = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
		s.notifyLocked()
		return nil
	case bytes.Compare(salt.Salt, old) > 0:
		return &schemas.Salt{V: schemas.SaltVersion, Day: day, Salt: old, CreatedAt: s.now()}
	}
	return nil
}

func (s *salts) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// get returns the salt of day, if known.
func (s *salts) get(day string) ([]byte, bool) {
	s.mu.RLock()
	b, ok := s.days[day]
	s.mu.RUnlock()
	return b, ok
}

// wait returns the salt of day, waiting for it until ctx is done.
func (s *salts) wait(ctx context.Context, day string) ([]byte, error) {
	for {
		s.mu.RLock()
		b, ok := s.days[day]
		ch := s.changed
		s.mu.RUnlock()
		if ok {
			return b, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, errNoSalt
		}
	}
}

// known returns the days with a salt, sorted (for tests and metrics).
func (s *salts) known() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.days))
	for d := range s.days {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// fingerprint returns the visitor fingerprint under the salt of day, or
// false when that salt is unknown. Keyed HMAC states are pooled per day:
// Reset restores the keyed state without hashing the key again.
func (s *salts) fingerprint(day, customer, ip, userAgent string) (string, bool) {
	s.mu.RLock()
	pool := s.macs[day]
	s.mu.RUnlock()
	if pool == nil {
		return "", false
	}
	m := pool.Get().(hash.Hash)
	m.Reset()
	v := fingerprintWith(m, customer, ip, userAgent)
	pool.Put(m)
	return v, true
}

// Fingerprint returns hex(HMAC-SHA256(salt, customer|ip|user_agent)), the
// visitor fingerprint of a postback.
func Fingerprint(salt []byte, customer, ip, userAgent string) string {
	return fingerprintWith(hmac.New(sha256.New, salt), customer, ip, userAgent)
}

func fingerprintWith(m hash.Hash, customer, ip, userAgent string) string {
	var buf [256]byte
	b := append(buf[:0], customer...)
	b = append(b, '|')
	b = append(b, ip...)
	b = append(b, '|')
	b = append(b, userAgent...)
	m.Write(b)
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], m.Sum(sum[:0]))
	return string(out[:])
}
