package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/streamtools/streamtools/ingest"
)

// Baseline is the bare fasthttp server the edge is measured against: it
// parses the postback JSON with encoding/json into the same struct and
// answers 202 with an id-sized body, and does nothing else.
type Baseline struct {
	srv    *fasthttp.Server
	ln     net.Listener
	served chan error // receives what Serve returned
}

// StartBaseline listens on a random loopback port.
func StartBaseline() (*Baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte(`{"id":"0190e2a1-7c4b-7d2e-9f00-000000000000"}`)
	b := &Baseline{ln: ln, served: make(chan error, 1), srv: &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			var r ingest.Request
			if err := json.Unmarshal(ctx.PostBody(), &r); err != nil || r.InfluencerID == "" {
				ctx.SetStatusCode(400)
				return
			}
			ctx.SetStatusCode(202)
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
	}}
	go func() { b.served <- b.srv.Serve(ln) }()
	return b, nil
}

// Addr is where the baseline listens.
func (b *Baseline) Addr() string { return b.ln.Addr().String() }

// Close stops the baseline and returns why it stopped serving, if it
// stopped before Close (nil once it was closed).
func (b *Baseline) Close() error {
	err := b.srv.Shutdown()
	if serr := <-b.served; serr != nil {
		err = errors.Join(err, fmt.Errorf("load: the baseline stopped serving: %w", serr))
	}
	return err
}
