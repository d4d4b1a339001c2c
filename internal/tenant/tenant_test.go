package tenant_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/schemas"
)

func TestRegistryFollowsKeysWithoutRestart(t *testing.T) {
	b := kafkatest.Start(t, "")
	names := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), names, 2)
	cl := kafkatest.Client(t, b.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := tenant.PutCustomer(ctx, cl, names, schemas.Customer{Code: "acme", TimeZone: "Europe/Paris", AntiCheat: true}); err != nil {
		t.Fatal(err)
	}
	key, rec, err := tenant.CreateKey(ctx, cl, names, "acme", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Hash == key || rec.Hash != tenant.HashKey(key) {
		t.Fatalf("stored hash %q must be the SHA-256 of the key, not the key", rec.Hash)
	}

	reg, err := tenant.NewRegistry([]string{b.Addr()}, names, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := testrun.Start(t, "registry Run", reg.Run)
	select {
	case <-reg.Ready():
	case <-run.Exited():
		t.Fatalf("the registry's Run returned before it was ready: %v", run.Err())
	case <-ctx.Done():
		t.Fatal("registry never became ready")
	}
	got, err := reg.Authenticate(key)
	if err != nil || got.Code != "acme" || got.Location.String() != "Europe/Paris" {
		t.Fatalf("Authenticate = %+v, %v; want acme in Europe/Paris", got, err)
	}
	if _, err := reg.Authenticate("stk_wrong"); !errors.Is(err, tenant.ErrUnknownKey) {
		t.Fatalf("unknown key: err = %v, want ErrUnknownKey", err)
	}

	if err := tenant.RevokeKey(ctx, cl, names, rec); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 10*time.Second, "revocation to reach the registry", func() bool {
		_, err := reg.Authenticate(key)
		return errors.Is(err, tenant.ErrUnknownKey)
	})
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    schemas.Customer
	}{
		{"empty code", schemas.Customer{TimeZone: "UTC"}},
		{"bad zone", schemas.Customer{Code: "a", TimeZone: "Mars/Olympus"}},
		{"negative rate", schemas.Customer{Code: "a", TimeZone: "UTC", RateLimit: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tenant.Validate(tc.c); err == nil {
				t.Fatal("Validate accepted an invalid customer")
			}
		})
	}
}

// TestRegistryClose: Close releases the registry's Kafka client whether or
// not Run ran, twice is harmless, and Run returns ErrClosed once it was
// called: before Run, at once; during Run, promptly, instead of polling a
// closed client.
func TestRegistryClose(t *testing.T) {
	t.Run("never run", func(t *testing.T) {
		before := kafkatest.ClientGoroutines()
		// Nothing listens on port 1: Close must not wait for a broker.
		reg, err := tenant.NewRegistry([]string{"127.0.0.1:1"}, kafkatest.Names(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if kafkatest.ClientGoroutines() <= before {
			t.Fatal("the registry's client started no goroutine: this test checks nothing")
		}
		reg.Close()
		reg.Close()
		kafkatest.Eventually(t, 5*time.Second, "the client's goroutines to end", func() bool {
			return kafkatest.ClientGoroutines() <= before
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := reg.Run(ctx); !errors.Is(err, tenant.ErrClosed) {
			t.Fatalf("Run after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("while running", func(t *testing.T) {
		b := kafkatest.Start(t, "")
		names := kafkatest.Names(t)
		kafkatest.CreateCoreTopics(t, b.Addr(), names, 1)
		reg, err := tenant.NewRegistry([]string{b.Addr()}, names, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- reg.Run(context.Background()) }()
		select {
		case <-reg.Ready():
		case err := <-done:
			t.Fatalf("Run returned before it was ready: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("registry never became ready")
		}
		reg.Close()
		select {
		case err := <-done:
			if !errors.Is(err, tenant.ErrClosed) {
				t.Fatalf("Run after Close = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run still runs 5 s after Close")
		}
		reg.Close()
	})
}
