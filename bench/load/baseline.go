package load

import (
	"encoding/json"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/streamtools/streamtools/ingest"
)

// Baseline is the bare fasthttp server the edge is measured against: it
// parses the postback JSON with encoding/json into the same struct and
// answers 202 with an id-sized body, and does nothing else.
type Baseline struct {
	srv *fasthttp.Server
	ln  net.Listener
}

// StartBaseline listens on a random loopback port.
func StartBaseline() (*Baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte(`{"id":"0190e2a1-7c4b-7d2e-9f00-000000000000"}`)
	b := &Baseline{ln: ln, srv: &fasthttp.Server{
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
	go b.srv.Serve(ln)
	return b, nil
}

// Addr is where the baseline listens.
func (b *Baseline) Addr() string { return b.ln.Addr().String() }

// Close stops the baseline.
func (b *Baseline) Close() error { return b.srv.Shutdown() }
