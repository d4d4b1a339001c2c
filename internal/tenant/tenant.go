// Package tenant keeps the customers (brands), their products and their
// postback access keys. The source of truth is two compacted topics (see
// schemas.Names.Customers and AccessKeys); every component that needs them
// tails both into memory with a Registry, so the edge's hot path never waits
// on a database, and a key created or revoked with `streamtools keys` takes
// effect on every running edge within a moment, without a restart.
//
// Access keys are stored only as SHA-256 hashes. The package does not
// authenticate dashboard users; that is package dashboard's.
package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// Errors of the registry and the writers.
var (
	ErrUnknownKey   = errors.New("tenant: unknown or revoked access key")
	ErrAmbiguousKey = errors.New("tenant: the key hash prefix matches more than one key")
	// ErrClosed is what Run returns once Close was called.
	ErrClosed = errors.New("tenant: registry closed")
)

// HashKey returns the hex SHA-256 of an access key, as stored.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Tenant is a customer as the registry serves it: its record, with the time
// zone already loaded.
type Tenant struct {
	schemas.Customer
	Location *time.Location
}

// Registry is an in-memory, always-current view of customers and keys.
// Its methods are safe for concurrent use.
type Registry struct {
	cl    *kgo.Client
	names schemas.Names
	log   *slog.Logger

	mu        sync.RWMutex
	customers map[string]*Tenant           // by code; guarded by mu
	keys      map[string]schemas.AccessKey // by hash; guarded by mu
	onChange  []func()                     // guarded by mu

	ready     chan struct{}
	readyOnce sync.Once

	closed    chan struct{} // closed by Close
	closeOnce sync.Once
}

// NewRegistry returns a registry reading brokers. Call Run to fill it.
func NewRegistry(brokers []string, names schemas.Names, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(names.Customers(), names.AccessKeys()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("tenant: creating kafka client: %w", err)
	}
	return &Registry{
		cl: cl, names: names, log: log,
		customers: map[string]*Tenant{},
		keys:      map[string]schemas.AccessKey{},
		ready:     make(chan struct{}),
		closed:    make(chan struct{}),
	}, nil
}

// Ready is closed once the registry has read both topics to their end as of
// the moment Run started.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

// OnChange registers fn to be called after every applied batch of changes.
func (r *Registry) OnChange(fn func()) {
	r.mu.Lock()
	r.onChange = append(r.onChange, fn)
	r.mu.Unlock()
}

// Close closes the registry's Kafka client, which Run does when it
// returns; a registry that never runs must be closed. It is safe to call
// more than once, and before, during or after Run: Run returns ErrClosed
// once Close was called.
func (r *Registry) Close() {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.cl.Close()
	})
}

func (r *Registry) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// Run tails both topics until ctx is done, then closes the registry. It
// returns ErrClosed at once, or soon, if Close was called before or while
// it runs.
func (r *Registry) Run(ctx context.Context) error {
	defer r.Close()
	if r.isClosed() {
		return ErrClosed
	}
	ends, err := r.endOffsets(ctx)
	if r.isClosed() {
		return ErrClosed
	}
	if err != nil {
		return err
	}
	if len(ends) == 0 {
		r.readyOnce.Do(func() { close(r.ready) })
	}
	for {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fs.IsClientClosed() || r.isClosed() {
			return ErrClosed
		}
		fs.EachError(func(t string, p int32, err error) {
			r.log.Warn("reading tenant topic", "topic", t, "partition", p, "err", err)
		})
		changed := false
		r.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			changed = true
			r.apply(rec)
			if end, ok := ends[rec.Topic]; ok && rec.Offset+1 >= end {
				delete(ends, rec.Topic)
			}
		})
		hooks := append([]func(){}, r.onChange...)
		r.mu.Unlock()
		if changed {
			for _, fn := range hooks {
				fn()
			}
		}
		if len(ends) == 0 {
			r.readyOnce.Do(func() { close(r.ready) })
		}
	}
}

// endOffsets returns the end offset of each non-empty topic (one partition
// each), which marks "caught up".
func (r *Registry) endOffsets(ctx context.Context) (map[string]int64, error) {
	ends := map[string]int64{}
	for _, topic := range []string{r.names.Customers(), r.names.AccessKeys()} {
		end, err := EndOffset(ctx, r.cl, topic)
		if err != nil {
			return nil, err
		}
		if end > 0 {
			ends[topic] = end
		}
	}
	return ends, nil
}

// apply updates the maps with one record; guarded by mu.
func (r *Registry) apply(rec *kgo.Record) {
	key := string(rec.Key)
	switch rec.Topic {
	case r.names.Customers():
		if rec.Value == nil {
			delete(r.customers, key)
			return
		}
		v, err := schemas.CustomerCodec.Decode(rec.Value)
		if err != nil {
			r.log.Warn("skipping undecodable customer record", "key", key, "err", err)
			return
		}
		c := v.(*schemas.Customer)
		loc, err := time.LoadLocation(c.TimeZone)
		if err != nil {
			r.log.Warn("customer has an unknown time zone; using UTC", "customer", c.Code, "timezone", c.TimeZone)
			loc = time.UTC
		}
		r.customers[key] = &Tenant{Customer: *c, Location: loc}
	case r.names.AccessKeys():
		if rec.Value == nil {
			delete(r.keys, key)
			return
		}
		v, err := schemas.AccessKeyCodec.Decode(rec.Value)
		if err != nil {
			r.log.Warn("skipping undecodable access key record", "err", err)
			return
		}
		r.keys[key] = *v.(*schemas.AccessKey)
	}
}

// Authenticate returns the customer of an access key, or ErrUnknownKey for
// an unknown or revoked key, or a key of an unknown customer.
func (r *Registry) Authenticate(key string) (*Tenant, error) {
	h := HashKey(key)
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.keys[h]
	if !ok || k.RevokedAt != nil {
		return nil, ErrUnknownKey
	}
	t, ok := r.customers[k.CustomerCode]
	if !ok {
		return nil, ErrUnknownKey
	}
	return t, nil
}

// Customer returns the customer with code.
func (r *Registry) Customer(code string) (*Tenant, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.customers[code]
	return t, ok
}

// Customers returns every customer.
func (r *Registry) Customers() []*Tenant {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Tenant, 0, len(r.customers))
	for _, t := range r.customers {
		out = append(out, t)
	}
	return out
}

// Keys returns every key record (hashes only), revoked ones included.
func (r *Registry) Keys() []schemas.AccessKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]schemas.AccessKey, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, k)
	}
	return out
}

// EndOffset returns the end offset of partition 0 of topic.
func EndOffset(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("tenant: listing the end offset of %s: %w", topic, err)
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok {
		return 0, fmt.Errorf("tenant: topic %s does not exist: start the broker with `streamtools broker` or create the topics", topic)
	}
	return o.Offset, nil
}

// Validate checks a customer record, naming the field and the fix.
func Validate(c schemas.Customer) error {
	if c.Code == "" || strings.ContainsAny(c.Code, "/ ") {
		return fmt.Errorf("tenant: customer code %q: use a non-empty code without spaces or slashes", c.Code)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		return fmt.Errorf("tenant: customer time zone %q: use an IANA name such as Europe/Paris or UTC", c.TimeZone)
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("tenant: rate limit %d: use 0 (the edge's default) or a positive number per second", c.RateLimit)
	}
	for code, p := range c.Products {
		if code == "" || code != p.Code {
			return fmt.Errorf("tenant: product %q: the map key and the product's code must match and not be empty", code)
		}
	}
	return nil
}

// PutCustomer writes (creates or replaces) a customer record.
func PutCustomer(ctx context.Context, cl *kgo.Client, names schemas.Names, c schemas.Customer) error {
	if err := Validate(c); err != nil {
		return err
	}
	c.V = schemas.CustomerVersion
	c.UpdatedAt = time.Now().UTC()
	b, err := schemas.CustomerCodec.Encode(c)
	if err != nil {
		return err
	}
	return produce(ctx, cl, names.Customers(), c.Code, b)
}

// CreateKey makes a new random access key for customer and stores its
// hash. The returned key is shown once; it cannot be recovered later.
func CreateKey(ctx context.Context, cl *kgo.Client, names schemas.Names, customer, label string) (string, schemas.AccessKey, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", schemas.AccessKey{}, fmt.Errorf("tenant: reading random bytes: %w", err)
	}
	key := "stk_" + hex.EncodeToString(raw[:])
	rec, err := PutKey(ctx, cl, names, key, customer, label)
	return key, rec, err
}

// PutKey stores the hash of a given key for customer (dev mode uses it to
// seed the documented demo key).
func PutKey(ctx context.Context, cl *kgo.Client, names schemas.Names, key, customer, label string) (schemas.AccessKey, error) {
	if len(key) < 8 {
		return schemas.AccessKey{}, fmt.Errorf("tenant: an access key needs 8 characters or more")
	}
	rec := schemas.AccessKey{
		V: schemas.AccessKeyVersion, Hash: HashKey(key), CustomerCode: customer,
		Label: label, CreatedAt: time.Now().UTC(),
	}
	b, err := schemas.AccessKeyCodec.Encode(rec)
	if err != nil {
		return rec, err
	}
	return rec, produce(ctx, cl, names.AccessKeys(), rec.Hash, b)
}

// RevokeKey marks a stored key record revoked. It keeps the record (with
// RevokedAt) so that `keys list` can show when a key was revoked.
func RevokeKey(ctx context.Context, cl *kgo.Client, names schemas.Names, rec schemas.AccessKey) error {
	now := time.Now().UTC()
	rec.RevokedAt = &now
	b, err := schemas.AccessKeyCodec.Encode(rec)
	if err != nil {
		return err
	}
	return produce(ctx, cl, names.AccessKeys(), rec.Hash, b)
}

func produce(ctx context.Context, cl *kgo.Client, topic, key string, value []byte) error {
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		return fmt.Errorf("tenant: writing %s: %w", topic, err)
	}
	return nil
}
