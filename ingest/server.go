package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// Config configures the edge. Zero values take the documented defaults.
type Config struct {
	// Addr is host:port to listen on; default "127.0.0.1:8080". Port 0
	// picks a free port (see Server.Addr).
	Addr string
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
	// Names gives the topic names. Required (schemas.NewNames).
	Names schemas.Names
	// Log receives the edge's log lines; nil discards them. Access keys
	// never appear in it: paths are logged as /{key} with a hash prefix.
	Log *slog.Logger
	// Registry serves customers and keys. Nil: the server creates one and
	// runs it for its lifetime. A registry passed in must be Run by the caller.
	Registry *tenant.Registry
	// Registerer receives the metrics; nil means prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves; nil means the Registerer when it is
	// a *prometheus.Registry, else prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer

	// ReadTimeout bounds reading one request, headers and body; default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response; default 10s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long; default 120s.
	IdleTimeout time.Duration
	// BodyLimit is the largest body of POST /{key}; default 16 KiB. Larger
	// bodies get 413.
	BodyLimit int
	// BatchBodyLimit is the largest body of POST /{key}/batch; default 1 MiB.
	BatchBodyLimit int
	// BatchMaxItems is the largest item count of a batch; default 1000.
	BatchMaxItems int
	// MaxConns bounds concurrent connections; default 16384. Connections
	// beyond it are answered the JSON 503 with Retry-After, then closed.
	MaxConns int
	// ProduceTimeout bounds how long a request waits for Kafka's
	// acknowledgement (and for a salt) before the edge answers 503 with
	// Retry-After; default 1.5s, so that every answer comes within 2 s.
	ProduceTimeout time.Duration
	// RetryAfter is the Retry-After of 503 and 429 answers; default 1s.
	RetryAfter time.Duration
	// DefaultRateLimit is the sustained postbacks per second allowed per
	// access key when the customer sets no RateLimit; default 100000, which
	// is above what one edge instance can take on the machines measured
	// (docs/edge.md, "Rate limits"), so the default never throttles a
	// sender below the edge's capacity. Negative disables the default
	// limit. Every key's burst is one second of its rate (limit.go), which
	// also bounds its batches' item count.
	DefaultRateLimit float64
	// SaltCheckEvery is how often the edge makes sure the daily salts exist
	// and deletes old ones; default 1h.
	SaltCheckEvery time.Duration
	// Linger is how long the producer waits to fill a batch; default 0:
	// batches fill while the previous produce request is in flight, which
	// gave the best throughput and latency (docs/benchmark-notes.md, "The edge").
	Linger time.Duration
	// KafkaOpts are extra franz-go options (TLS, SASL, ...) for every client.
	KafkaOpts []kgo.Opt
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(i *int, v int) {
		if *i == 0 {
			*i = v
		}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.ProduceTimeout, 1500*time.Millisecond)
	def(&c.RetryAfter, time.Second)
	def(&c.SaltCheckEvery, time.Hour)
	defInt(&c.BodyLimit, 16<<10)
	defInt(&c.BatchBodyLimit, 1<<20)
	defInt(&c.BatchMaxItems, 1000)
	defInt(&c.MaxConns, 16384)
	if c.DefaultRateLimit == 0 {
		c.DefaultRateLimit = 100000
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.DefaultRegisterer
	}
	if c.Gatherer == nil {
		if g, ok := c.Registerer.(prometheus.Gatherer); ok {
			c.Gatherer = g
		} else {
			c.Gatherer = prometheus.DefaultGatherer
		}
	}
}

// Validate reports the first unusable setting, naming the field and the fix.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("ingest: Brokers is empty: give at least one host:port (--brokers)")
	case c.Names.Validate() != nil:
		return fmt.Errorf("ingest: Names: %w", c.Names.Validate())
	case c.BodyLimit < 512:
		return fmt.Errorf("ingest: BodyLimit %d is too small for one postback: use 512 bytes or more", c.BodyLimit)
	case c.BatchBodyLimit < c.BodyLimit:
		return fmt.Errorf("ingest: BatchBodyLimit %d is below BodyLimit %d: raise it", c.BatchBodyLimit, c.BodyLimit)
	case c.BatchBodyLimit > 64<<20:
		return fmt.Errorf("ingest: BatchBodyLimit %d is above 64 MiB: lower it and send smaller batches", c.BatchBodyLimit)
	case c.BatchMaxItems < 1:
		return fmt.Errorf("ingest: BatchMaxItems %d: use 1 or more", c.BatchMaxItems)
	case c.MaxConns < 1:
		return fmt.Errorf("ingest: MaxConns %d: use 1 or more", c.MaxConns)
	case c.ProduceTimeout < 10*time.Millisecond || c.ProduceTimeout > time.Minute:
		return fmt.Errorf("ingest: ProduceTimeout %v: use between 10ms and 1m", c.ProduceTimeout)
	case c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0:
		return errors.New("ingest: ReadTimeout, WriteTimeout and IdleTimeout must not be negative")
	case c.Linger < 0 || c.Linger > time.Second:
		return fmt.Errorf("ingest: Linger %v: use between 0 and 1s", c.Linger)
	}
	return nil
}

// Server is the HTTP edge. Create it with New, start it with Run.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	app      *fiber.App
	cl       *kgo.Client
	reg      *tenant.Registry
	ownReg   bool
	salts    *salts
	metrics  *metrics
	limiters *limiters
	retry    string // Retry-After value, seconds
	topic    string // the postbacks topic
	auth     authCache
	days     dayCache

	// runCtx lives until the producer is closed; produce calls use it so
	// that in-flight requests finish during shutdown.
	runCtx    context.Context
	runCancel context.CancelFunc
	closeOnce sync.Once
	lastWarn  atomic.Int64 // unix nanos of the last throttled warning
}

// New validates cfg, binds the listener and creates the Kafka clients.
// Nothing is served until Run.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, reg: cfg.Registry, topic: cfg.Names.Postbacks()}
	s.retry = strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second))
	s.runCtx, s.runCancel = context.WithCancel(context.Background())
	s.limiters = newLimiters(cfg.DefaultRateLimit)

	var err error
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RecordPartitioner(kafkautil.Partitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		// A record waits at most this long in the client; its request
		// was answered 503 long before.
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout + 30*time.Second),
		kgo.ProduceRequestTimeout(cfg.ProduceTimeout + 10*time.Second),
	}, cfg.KafkaOpts...)
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("ingest: creating the kafka producer: %w", err)
	}
	if s.salts, err = newSalts(cfg.Brokers, s.cl, cfg.Names.Salts(), cfg.SaltCheckEvery, cfg.Log, cfg.KafkaOpts...); err != nil {
		s.cl.Close()
		return nil, err
	}
	if s.reg == nil {
		if s.reg, err = tenant.NewRegistry(cfg.Brokers, cfg.Names, cfg.Log); err != nil {
			s.cl.Close()
			s.salts.consumer.Close()
			return nil, err
		}
		s.ownReg = true
	}
	s.reg.OnChange(s.auth.invalidate)
	if s.metrics, err = newMetrics(cfg.Registerer, func() float64 { return float64(len(s.salts.known())) }); err != nil {
		s.closeClients()
		return nil, fmt.Errorf("ingest: registering metrics: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.closeClients()
		return nil, fmt.Errorf("ingest: listening on %s: %w", cfg.Addr, err)
	}
	full := refusal(errUnavailable, "", "the edge has its maximum of %d connections open (--max-conns): retry after the Retry-After delay, and reuse keep-alive connections", cfg.MaxConns)
	s.ln = newConnLimit(ln, cfg.MaxConns, full, s.retry, func() {
		s.metrics.request("other", fiber.StatusServiceUnavailable)
		s.warnThrottled("answering 503 to a connection: --max-conns connections are open", "max_conns", cfg.MaxConns)
	})
	s.app = s.newApp()
	return s, nil
}

// closeClients closes what New created when New fails after creating it:
// the producer, the salts consumer and the registry unless it is the
// caller's (Config.Registry).
func (s *Server) closeClients() {
	s.cl.Close()
	s.salts.consumer.Close()
	if s.ownReg {
		s.reg.Close()
	}
}

// Ready reports whether customers, keys and the daily salts are loaded
// (/readyz also asks the brokers).
func (s *Server) Ready() bool {
	select {
	case <-s.reg.Ready():
	default:
		return false
	}
	select {
	case <-s.salts.Ready():
		return true
	default:
		return false
	}
}

// Addr is the address the edge listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) newApp() *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "streamtools-ingest",
		DisableStartupMessage: true,
		BodyLimit:             s.cfg.BatchBodyLimit,
		// The listener (connLimit) bounds connections to MaxConns with a
		// JSON 503; fasthttp's limit, whose 503 is plain text, is a
		// backstop above it (a closed connection's worker is released
		// just after the listener counts it closed).
		Concurrency:  2 * s.cfg.MaxConns,
		ReadTimeout:  s.cfg.ReadTimeout,
		WriteTimeout: s.cfg.WriteTimeout,
		IdleTimeout:  s.cfg.IdleTimeout,
		ErrorHandler: s.errorHandler,
		// Keys are case-sensitive.
		CaseSensitive: true,
		// The edge reads no multipart body: decode answers 415 to any.
		// Parsed ahead, one that does not parse got fasthttp's 400.
		DisablePreParseMultipartForm: true,
	})
	// What fasthttp refuses before any handler runs (a malformed request
	// line, header or chunked body; headers or body too large; a read
	// timeout) is answered by refuseMalformed, not by Fiber's wrapper,
	// which passes fasthttp's error text on; that text quotes the request,
	// access key included. SecureErrorLogMessage keeps most of the request
	// out of the error itself as well.
	srv := app.Server()
	srv.SecureErrorLogMessage = true
	srv.ErrorHandler = s.refuseMalformed
	// Framing is checked ahead of Fiber's router, for every path.
	route := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if ambiguousFraming(&ctx.Request.Header) {
			s.writeRefusal(ctx, refusal(errInvalid, "transfer-encoding",
				"the request has both Content-Length and Transfer-Encoding headers: send one of them (RFC 9112, section 6.1)"))
			return
		}
		route(ctx)
	}
	app.Use(recover.New())
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok\n") })
	app.Get("/readyz", s.readyz)
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	app.Get("/metrics", func(c *fiber.Ctx) error { metricsHandler(c.Context()); return nil })
	// Access keys are 8 characters or more, so they never collide with
	// the paths above.
	app.Post("/:key/batch", s.handleBatch)
	app.Post("/:key", s.handlePostback)
	// Not app.Get, which routes HEAD as well: fasthttp reads the body of a
	// HEAD that has a Content-Length, and a HEAD must store nothing. HEAD
	// gets notRouted's 405.
	app.Add(fiber.MethodGet, "/:key", s.handlePostback)
	app.Use(s.notRouted)
	return app
}

// notRouted answers what no route took: 405 with Allow for a known path
// and another method, else 404.
func (s *Server) notRouted(c *fiber.Ctx) error {
	allow, msg := "", ""
	p := strings.TrimSuffix(c.Path(), "/")
	switch {
	case p == "/healthz" || p == "/readyz" || p == "/metrics":
		allow, msg = "GET, HEAD", "send GET "+p
	case len(p) > 1 && strings.IndexByte(p[1:], '/') < 0:
		allow, msg = "GET, POST", "send a postback with POST /{access_key} (a JSON object or a form body) or GET /{access_key}?influencer_id=...&product=..."
	case strings.HasSuffix(p, "/batch") && strings.Count(p, "/") == 2 && len(p) > len("//batch"):
		allow, msg = "POST", "send a batch with POST /{access_key}/batch (a JSON array or NDJSON body)"
	default:
		return s.answer(c, "other", errNoEndpoint)
	}
	c.Set(fiber.HeaderAllow, allow)
	return s.answer(c, "other", refusal(errMethod, "", "method %s is not allowed here (allowed: %s): %s", c.Method(), allow, msg))
}

// Run serves until ctx is done, then shuts down in order: stop accepting,
// finish in-flight requests (each waits at most ProduceTimeout), flush and
// close the producer, stop tailing salts and tenants.
func (s *Server) Run(ctx context.Context) error {
	bg, stopBg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if s.ownReg {
		wg.Go(func() {
			if err := s.reg.Run(bg); err != nil {
				s.log.Error("tenant registry stopped", "err", err)
			}
		})
	}
	wg.Go(func() {
		if err := s.salts.Run(bg); err != nil {
			s.log.Error("salts stopped", "err", err)
		}
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.app.Listener(s.ln) }()
	s.log.Info("ingest edge listening", "addr", s.Addr())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("ingest: serving: %w", err)
	}
	s.log.Info("ingest edge stopping")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ProduceTimeout+s.cfg.WriteTimeout)
	if serr := s.app.ShutdownWithContext(sctx); serr != nil && err == nil {
		err = fmt.Errorf("ingest: shutting down the HTTP server: %w", serr)
	}
	cancel()
	fctx, cancel := context.WithTimeout(context.Background(), s.cfg.ProduceTimeout)
	if ferr := s.cl.Flush(fctx); ferr != nil {
		s.log.Warn("flushing the producer at shutdown", "err", ferr)
	}
	cancel()
	s.runCancel()
	stopBg()
	wg.Wait()
	s.cl.Close()
	return err
}

// keyRef is how logs refer to an access key: a prefix of its hash.
func keyRef(key string) string { return tenant.HashKey(key)[:12] }

// warnThrottled logs at most one warning a second, so that an outage does
// not flood the log with one line per request.
func (s *Server) warnThrottled(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(time.Second) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, args...)
}

func (s *Server) readyz(c *fiber.Ctx) error {
	why := ""
	select {
	case <-s.reg.Ready():
	default:
		why = "the customers and access keys are not loaded yet"
	}
	if why == "" {
		select {
		case <-s.salts.Ready():
		default:
			why = "the daily salts are not known yet"
		}
	}
	if why == "" {
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.ProduceTimeout)
		err := s.cl.Ping(ctx)
		cancel()
		if err != nil {
			why = "the Kafka brokers do not answer"
		}
	}
	if why != "" {
		c.Set(fiber.HeaderRetryAfter, s.retry)
		return c.Status(fiber.StatusServiceUnavailable).SendString("not ready: " + why + "\n")
	}
	return c.SendString("ready\n")
}

// answer writes the error answer of err (see statusTable) and counts it.
func (s *Server) answer(c *fiber.Ctx, endpoint string, err error) error {
	status, _, body := bodyOf(err)
	if status == statusInternal {
		s.log.Error("internal error", "path", redactPath(c.Path()), "err", err)
	}
	return s.sendJSON(c, endpoint, status, body)
}

func (s *Server) sendJSON(c *fiber.Ctx, endpoint string, code int, body []byte) error {
	s.metrics.request(endpoint, code)
	if retryAfterOf(code) {
		c.Set(fiber.HeaderRetryAfter, s.retry)
	}
	c.Response().Header.SetContentTypeBytes(jsonType)
	c.Status(code)
	return c.Send(body)
}

var jsonType = []byte("application/json")

// errBadKey answers an unknown key, a revoked key and a key of a deleted
// customer: the same status and bytes.
var errBadKey = refusal(errUnauthorized, "access_key", "unknown or revoked access key: check the key in the URL, or create one with streamtools keys create")

var errNoEndpoint = refusal(errNotFound, "", "no such endpoint: send POST or GET /{access_key}, or POST /{access_key}/batch")

// errorHandler answers errors returned by Fiber or the handlers (panics
// included) in the same JSON shape. Like refuseMalformed, it never passes
// the text of an error of Fiber's on: it may quote the request.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		err = s.readRefusal(fe.Code, err)
	}
	return s.answer(c, "other", err)
}

// refuseMalformed is fasthttp's ErrorHandler: it answers a request fasthttp
// could not read (see refusal). fasthttp closes the connection afterwards.
func (s *Server) refuseMalformed(ctx *fasthttp.RequestCtx, err error) {
	code := fiber.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		code = fiber.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		code = fiber.StatusRequestEntityTooLarge
	case errors.As(err, &ne) && ne.Timeout(), strings.Contains(err.Error(), "timeout"):
		code = fiber.StatusRequestTimeout
	}
	r := s.readRefusal(code, err)
	if code == fiber.StatusRequestEntityTooLarge && !bytes.HasSuffix(ctx.Path(), []byte("/batch")) {
		// fasthttp applies the batch's limit to every path (Fiber has one
		// BodyLimit): quote the single endpoint's own.
		r = refusal(errTooLarge, "body", "%s", s.tooLarge(ctx.Request.Header.ContentLength()))
	}
	// Not the error: its text may quote the request.
	field := ""
	if fe := (*FieldError)(nil); errors.As(r, &fe) {
		field = fe.Field
	}
	s.log.Debug("refused a request that is not valid HTTP/1.1", "status", code, "field", field)
	s.writeRefusal(ctx, r)
}

// readRefusal is the refusal of a request that Fiber or fasthttp answered
// with status code. The message is fixed text: the error only chooses
// among them, by fasthttp's own wording, and is never quoted. A status the
// table does not know is internal.
func (s *Server) readRefusal(code int, err error) error {
	switch code {
	case fiber.StatusRequestEntityTooLarge:
		return refusal(errTooLarge, "body", "the body is larger than %d bytes, the limit of a batch: split the batch", s.cfg.BatchBodyLimit)
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return refusal(errHeadersTooLarge, "headers", "the request headers are too large: keep the request line and headers under 4 KiB")
	case fiber.StatusRequestTimeout:
		return refusal(errTimeout, "", "the request was not received within %v: send it whole, without pauses", s.cfg.ReadTimeout)
	case fiber.StatusNotFound:
		return errNoEndpoint
	case fiber.StatusMethodNotAllowed:
		return refusal(errMethod, "", "method not allowed: send POST or GET /{access_key}, or POST /{access_key}/batch")
	case fiber.StatusBadRequest:
	default:
		if kind := kindOf(code); kind != nil {
			return refusal(kind, "", "%s", strings.ToLower(http.StatusText(code)))
		}
		return err
	}
	text := ""
	if err != nil {
		text = err.Error()
	}
	switch {
	case strings.Contains(text, "Content-Length"):
		return refusal(errInvalid, "content-length", "the Content-Length header is not valid: send one Content-Length, the body's size in decimal bytes")
	case strings.Contains(text, "Transfer-Encoding"):
		return refusal(errInvalid, "transfer-encoding", "unsupported Transfer-Encoding: send Transfer-Encoding: chunked, or a Content-Length")
	case strings.Contains(text, "header key"), strings.Contains(text, "header name"):
		return refusal(errInvalid, "headers", "a header name is not valid: header names are tokens, with no space before the colon")
	case strings.Contains(text, "request headers"):
		return refusal(errInvalid, "request", "the request line or headers are not valid HTTP/1.1: send METHOD /path HTTP/1.1, then Name: value headers")
	case text != "":
		return refusal(errInvalid, "body", "the body could not be read: send exactly Content-Length bytes, or a valid chunked body")
	}
	return refusal(errInvalid, "", "bad request")
}

// writeRefusal writes the answer of err outside Fiber (see statusTable)
// and closes the connection after it.
func (s *Server) writeRefusal(ctx *fasthttp.RequestCtx, err error) {
	status, retryAfter, body := bodyOf(err)
	s.metrics.request("other", status)
	ctx.Response.Reset()
	ctx.Response.Header.SetContentTypeBytes(jsonType)
	if retryAfter {
		ctx.Response.Header.Set(fiber.HeaderRetryAfter, s.retry)
	}
	ctx.SetStatusCode(status)
	ctx.SetBody(body)
	ctx.SetConnectionClose()
}

// ambiguousFraming reports a request with both Content-Length and
// Transfer-Encoding headers. fasthttp reads such a body as chunked; a proxy
// in front that reads it by Content-Length would see a different request
// boundary, and bytes one of them takes for a body the other takes for the
// next request (request smuggling). RFC 9112 (6.1) lets a server refuse it
// and requires closing the connection after it. fasthttp keeps no trace of
// a Content-Length it overrode, nor of an identity Transfer-Encoding: the
// raw headers are read, a few lines per request.
func ambiguousFraming(h *fasthttp.RequestHeader) bool {
	raw := h.RawHeaders()
	var cl, te bool
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) == 0 {
			continue
		}
		switch line[0] | 0x20 {
		case 'c':
			cl = cl || hasPrefixFold(line, "content-length:")
		case 't':
			te = te || hasPrefixFold(line, "transfer-encoding:")
		}
	}
	return cl && te
}

// redactPath replaces the access key of a path with "{key}".
func redactPath(p string) string {
	switch p {
	case "/healthz", "/readyz", "/metrics":
		return p
	}
	if strings.HasSuffix(p, "/batch") {
		return "/{key}/batch"
	}
	return "/{key}"
}

// admit answers readiness, authentication and rate limiting. It returns the
// tenant, or nil once it has answered.
func (s *Server) admit(c *fiber.Ctx, endpoint string, n int, now time.Time) (*tenant.Tenant, error) {
	select {
	case <-s.reg.Ready():
	default:
		return nil, s.answer(c, endpoint, refusal(errUnavailable, "", "the edge is starting: retry after the Retry-After delay"))
	}
	key := c.Params("key")
	t, err := s.auth.authenticate(s.reg, key)
	if err != nil {
		return nil, s.answer(c, endpoint, errBadKey)
	}
	switch v, most := s.limiters.allow(key, t.RateLimit, n, now); v {
	case limited:
		return nil, s.answer(c, endpoint, refusal(errRateLimited, "access_key",
			"over the rate limit of this access key: retry after the Retry-After delay, or ask for a higher rate_limit"))
	case tooLarge:
		s.metrics.records.WithLabelValues("invalid").Add(float64(n))
		return nil, s.answer(c, endpoint, refusal(errInvalid, "body",
			"the batch has %d items: this access key's rate limit allows at most %d at once; split it, or ask for a higher rate_limit", n, most))
	}
	return t, nil
}

func (s *Server) handlePostback(c *fiber.Ctx) error {
	endpoint := "post"
	if c.Method() == fiber.MethodGet {
		endpoint = "get"
	}
	// Fiber's Body visits every header (for Content-Encoding) on each call:
	// take it once.
	body := c.Body()
	if len(body) > s.cfg.BodyLimit {
		return s.answer(c, endpoint, refusal(errTooLarge, "body", "%s", s.tooLarge(len(body))))
	}
	// One clock reading serves the rate limiter, the record's received_at
	// and the start of the produce latency.
	now := time.Now()
	t, err := s.admit(c, endpoint, 1, now)
	if t == nil {
		return err
	}
	var r Request
	if err := s.decode(c, body, &r); err != nil {
		return s.badRequest(c, endpoint, err)
	}
	if err := s.check(t, &r); err != nil {
		return s.badRequest(c, endpoint, err)
	}
	w := waiters.Get().(*waiter)
	id, err := s.record(c.UserContext(), t, &r, &w.rec, now)
	if err != nil {
		w.reset()
		waiters.Put(w)
		return s.unavailable(c, endpoint, err)
	}
	if err := s.produce(w); err != nil {
		return s.unavailable(c, endpoint, err)
	}
	s.metrics.produce.Observe(time.Since(now).Seconds())
	s.metrics.accepted.Inc()
	s.metrics.request(endpoint, fiber.StatusAccepted)
	c.Response().Header.SetContentTypeBytes(jsonType)
	c.Status(fiber.StatusAccepted)
	// Written into the response's pooled buffer: no allocation.
	resp := c.Response()
	resp.SetBodyString(`{"id":"`)
	resp.AppendBodyString(id)
	resp.AppendBodyString(`"}`)
	return nil
}

// tooLarge is the 413 message of a single postback of n bytes (n < 0:
// unknown, a chunked body).
func (s *Server) tooLarge(n int) string {
	if n < 0 {
		return fmt.Sprintf("the body is larger than %d bytes, the limit of one postback: send one postback per request, or many to /{access_key}/batch", s.cfg.BodyLimit)
	}
	return fmt.Sprintf("the body is %d bytes: the limit of one postback is %d; use /batch for many", n, s.cfg.BodyLimit)
}

// errProduceTimeout is the error of a record not acknowledged within
// ProduceTimeout.
var errProduceTimeout = errors.New("ingest: no acknowledgement within the produce timeout")

// waiter carries one record and waits for its acknowledgement. Waiters are
// pooled with their record, value buffer, channel and timer: a postback
// costs none of these allocations. The promise and the timer each send at
// most once on ch, which holds both, so neither ever blocks; the request
// takes the first. The client is done with a record once its promise ran,
// and the timer is done once stopped before firing: a waiter is reused only
// then, and dropped otherwise. A plain receive costs less than a select on
// the channel and a timer channel, which was visible in the profile.
type waiter struct {
	rec     kgo.Record
	ch      chan error
	timer   *time.Timer // sends errProduceTimeout on ch when it fires
	promise func(*kgo.Record, error)
}

var waiters = sync.Pool{New: func() any {
	w := &waiter{ch: make(chan error, 2)}
	w.timer = time.AfterFunc(time.Hour, func() { w.ch <- errProduceTimeout })
	w.timer.Stop()
	w.rec.Value = make([]byte, 0, 512)
	w.promise = func(_ *kgo.Record, err error) { w.ch <- err }
	return w
}}

// reset clears the record for reuse, keeping its buffers.
func (w *waiter) reset() {
	w.rec = kgo.Record{Key: w.rec.Key[:0], Value: w.rec.Value[:0]}
}

// produce hands w's record to the producer and waits for Kafka's
// acknowledgement (acks=all), at most ProduceTimeout. A full producer buffer
// (the brokers are down or slow) fails at once.
func (s *Server) produce(w *waiter) error {
	w.timer.Reset(s.cfg.ProduceTimeout)
	s.cl.TryProduce(s.runCtx, &w.rec, w.promise)
	err := <-w.ch
	if err == errProduceTimeout || !w.timer.Stop() {
		// The promise or the timer may still send: drop w.
		return err
	}
	w.reset()
	waiters.Put(w)
	return err
}

// badRequest answers a postback that did not decode or validate (a
// *FieldError: 400, or 415 for the Content-Type).
func (s *Server) badRequest(c *fiber.Ctx, endpoint string, err error) error {
	s.metrics.records.WithLabelValues("invalid").Inc()
	return s.answer(c, endpoint, err)
}

// unavailable answers a postback that was not acknowledged in time, or
// whose day has no salt yet: 503 with Retry-After.
func (s *Server) unavailable(c *fiber.Ctx, endpoint string, err error) error {
	s.metrics.records.WithLabelValues("unavailable").Inc()
	s.warnThrottled("answering 503: the postback was not acknowledged in time", "path", redactPath(c.Path()), "err", err)
	return s.answer(c, endpoint, notStored(err))
}

// notStored is the refusal of a postback that err kept from being stored.
func notStored(err error) *FieldError {
	if errors.Is(err, errNoSalt) {
		return refusal(errUnavailable, "", "the visitor-fingerprint salt of the day is not available yet: retry after the Retry-After delay")
	}
	return refusal(errUnavailable, "", "Kafka did not acknowledge the postback in time; it may not be stored: retry after the Retry-After delay (with the same event_id)")
}

var errUnsupportedType = refusal(errMediaType, "content-type", "unsupported Content-Type: send application/json or application/x-www-form-urlencoded")

// decode reads a single postback from the query (GET), a form, or JSON.
func (s *Server) decode(c *fiber.Ctx, body []byte, r *Request) error {
	rc := c.Context()
	if c.Method() == fiber.MethodGet {
		rc.QueryArgs().VisitAll(func(k, v []byte) { r.set(string(k), string(v)) })
		return nil
	}
	ct := rc.Request.Header.ContentType()
	switch {
	case hasPrefixFold(ct, "multipart/"):
		return errUnsupportedType
	case looksLikeJSON(body):
		// curl -d sends JSON as application/x-www-form-urlencoded unless
		// told otherwise; a form body never starts with '{'.
	case hasPrefixFold(ct, "application/x-www-form-urlencoded"):
		rc.PostArgs().VisitAll(func(k, v []byte) { r.set(string(k), string(v)) })
		return nil
	}
	// JSON is the default: many senders send it as text/plain or without a
	// Content-Type.
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
		return fieldErr("body", "the body is a JSON array: send arrays of postbacks to POST /{access_key}/batch, or one JSON object here")
	}
	return DecodeJSON(body, r)
}

func looksLikeJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		// A form body never starts with either.
		return c == '{' || c == '['
	}
	return false
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

// check validates r and its product against the customer.
func (s *Server) check(t *tenant.Tenant, r *Request) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if len(t.Products) > 0 {
		if _, ok := t.Products[r.Product]; !ok {
			known := make([]string, 0, len(t.Products))
			for code := range t.Products {
				known = append(known, code)
			}
			sort.Strings(known)
			return fieldErr("product", "unknown product %q: this customer's products are %s", r.Product, strings.Join(known, ", "))
		}
	}
	return nil
}

// record fills rec, the Kafka record of a validated postback, and returns
// its id. It fails only when the salt of the day is unknown within the
// produce timeout.
func (s *Server) record(ctx context.Context, t *tenant.Tenant, r *Request, rec *kgo.Record, now time.Time) (string, error) {
	now = now.UTC()
	day := s.days.of(now, t.Location)
	p := schemas.Postback{
		V: schemas.PostbackVersion, ReceivedAt: now, CustomerCode: t.Code,
		TimeZone: t.Location.String(), Day: day, AntiCheat: t.AntiCheat,
		Attrs: schemas.Attrs{
			InfluencerID: r.InfluencerID, Product: r.Product, EventType: r.EventType,
			EventName: r.EventName, Campaign: r.Campaign, Medium: r.Medium, Source: r.Source,
			Country: r.Country, EventID: r.EventID,
		},
	}
	if r.IP != "" && r.UserAgent != "" {
		v, ok := s.salts.fingerprint(day, t.Code, r.IP, r.UserAgent)
		if !ok {
			wctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
			_, err := s.salts.wait(wctx, day)
			cancel()
			if err == nil {
				v, ok = s.salts.fingerprint(day, t.Code, r.IP, r.UserAgent)
			}
			if !ok {
				return "", errNoSalt
			}
		}
		p.Visitor = v
	}
	// The IP ends here: it is in no field of p.
	r.IP = ""
	p.ID = newID(now)
	rec.Topic = s.topic
	rec.Key = schemas.AppendPostbackKey(rec.Key[:0], &p)
	rec.Value = schemas.AppendPostback(rec.Value[:0], &p)
	return p.ID, nil
}

// itemResult is one entry of a batch answer.
type itemResult struct {
	Index  int    `json:"index"`
	Status int    `json:"status"`
	ID     string `json:"id,omitempty"`
	Error  string `json:"error,omitempty"`
	Field  string `json:"field,omitempty"`
}

// set makes r the result of a refused item (see statusTable).
func (r *itemResult) set(err error) {
	r.Status, _ = statusOf(err)
	r.Error, r.Field = "internal error", ""
	var fe *FieldError
	if r.Status != statusInternal && errors.As(err, &fe) {
		r.Error, r.Field = fe.Msg, fe.Field
	}
}

type batchBody struct {
	Accepted int          `json:"accepted"`
	Rejected int          `json:"rejected"`
	Failed   int          `json:"failed"`
	Results  []itemResult `json:"results"`
}

func (s *Server) handleBatch(c *fiber.Ctx) error {
	const endpoint = "batch"
	items, err := DecodeBatch(c.Body(), s.cfg.BatchMaxItems)
	t, aerr := s.admit(c, endpoint, max(len(items), 1), time.Now())
	if t == nil {
		return aerr
	}
	if err != nil {
		return s.badRequest(c, endpoint, err)
	}
	results := make([]itemResult, len(items))
	recs := make([]*kgo.Record, len(items))
	for i, raw := range items {
		results[i].Index = i
		var r Request
		err := DecodeJSON(raw, &r)
		if err == nil {
			err = s.check(t, &r)
		}
		if err != nil {
			results[i].set(err)
			s.metrics.records.WithLabelValues("invalid").Inc()
			continue
		}
		rec := new(kgo.Record)
		id, err := s.record(c.UserContext(), t, &r, rec, time.Now())
		if err != nil {
			results[i].set(notStored(err))
			continue
		}
		results[i].ID = id
		recs[i] = rec
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.runCtx, s.cfg.ProduceTimeout)
	defer cancel()
	errs := make([]error, len(items))
	var pending sync.WaitGroup
	for i, rec := range recs {
		if rec == nil {
			continue
		}
		pending.Add(1)
		s.cl.TryProduce(ctx, rec, func(_ *kgo.Record, err error) { errs[i] = err; pending.Done() })
	}
	allDone := make(chan struct{})
	go func() { pending.Wait(); close(allDone) }()
	timedOut := false
	select {
	case <-allDone:
	case <-ctx.Done():
		timedOut = true
	}
	var body batchBody
	for i := range results {
		r := &results[i]
		if recs[i] != nil {
			if timedOut || errs[i] != nil {
				// errs[i] may still be written by a late promise: read it
				// only when every promise returned.
				r.ID = ""
				r.set(refusal(errUnavailable, "", "Kafka did not acknowledge this postback in time; it may not be stored: retry it (with the same event_id)"))
			} else {
				r.Status = fiber.StatusAccepted
			}
		}
		switch r.Status {
		case fiber.StatusAccepted:
			body.Accepted++
		case fiber.StatusBadRequest:
			body.Rejected++
		default:
			body.Failed++
		}
	}
	if body.Accepted > 0 {
		s.metrics.produce.Observe(time.Since(start).Seconds())
		s.metrics.accepted.Add(float64(body.Accepted))
	}
	if body.Failed > 0 {
		s.metrics.records.WithLabelValues("unavailable").Add(float64(body.Failed))
		s.warnThrottled("answering 503 to a batch: postbacks were not acknowledged in time", "path", "/{key}/batch", "failed", body.Failed)
	}
	body.Results = results
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	code := fiber.StatusAccepted
	switch {
	case body.Failed > 0:
		code = fiber.StatusServiceUnavailable
	case body.Rejected > 0 && body.Accepted > 0:
		code = fiber.StatusMultiStatus
	case body.Rejected > 0:
		code = fiber.StatusBadRequest
	}
	return s.sendJSON(c, endpoint, code, b)
}
