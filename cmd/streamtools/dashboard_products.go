package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// productTail tails the customers topic for the dashboard, which says
// beside each widget preview which event types the widget counts
// (dashboard.Config.Products). The dashboard works without it: while the
// brokers do not answer, the notes are left out.
type productTail struct {
	brokers []string
	names   schemas.Names
	log     *slog.Logger
	reg     atomic.Pointer[tenant.Registry] // the registry being read
}

// Products is dashboard.Config.Products: a customer's products, once the
// customers topic is read.
func (p *productTail) Products(customer string) (map[string]schemas.Product, bool) {
	reg := p.reg.Load()
	if reg == nil {
		return nil, false
	}
	select {
	case <-reg.Ready():
	default:
		return nil, false
	}
	t, ok := reg.Customer(customer)
	if !ok {
		return nil, false
	}
	return t.Products, true
}

// Run reads the topic until ctx is done; a registry that stops (the
// brokers are unreachable at its start) is replaced every 5 s.
func (p *productTail) Run(ctx context.Context) {
	warned := false
	for ctx.Err() == nil {
		reg, err := tenant.NewRegistry(p.brokers, p.names, p.log)
		if err == nil {
			p.reg.Store(reg)
			err = reg.Run(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if !warned {
			p.log.Warn("reading the customers topic: the notes beside the widget previews are off until it is read", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}
