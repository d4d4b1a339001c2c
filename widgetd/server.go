package widgetd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// Defaults of Config.
const (
	DefaultAddr              = "127.0.0.1:8081"
	DefaultDomain            = "streamtools.io"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultWriteTimeout      = 5 * time.Second
	DefaultMaxConnections    = 100_000
	DefaultShutdownTimeout   = 5 * time.Second
)

// Config configures a Server. The zero value of each field documents its
// default.
type Config struct {
	// Addr is the host:port to listen on. Empty means DefaultAddr
	// (127.0.0.1:8081); port 0 picks a free port (see Server.Addr).
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
	// Names give the stats table and tenant topic names. Required.
	Names schemas.Names
	// Domain of the host form <product>-widget-<customer>.<domain>.
	// Empty means DefaultDomain (streamtools.io).
	Domain string
	// Registry of customers. Nil makes the server tail its own and run it
	// in Run; a registry passed in must be run by the caller.
	Registry *tenant.Registry
	// HeartbeatInterval between websocket pings and heartbeat messages;
	// a page that hears nothing for 3 intervals reconnects. Zero means
	// DefaultHeartbeatInterval (10 s).
	HeartbeatInterval time.Duration
	// WriteTimeout bounds one websocket write; a client that does not read
	// for that long is disconnected. Zero means DefaultWriteTimeout (5 s).
	WriteTimeout time.Duration
	// MaxConnections bounds the open websockets; more are refused with
	// 503. Zero means DefaultMaxConnections (100,000).
	MaxConnections int
	// ShutdownTimeout bounds each shutdown step. Zero means 5 s.
	ShutdownTimeout time.Duration
	// Registerer receives the metrics. Nil means a new registry, served at
	// /metrics.
	Registerer prometheus.Registerer
	// Gatherer is served at /metrics. Nil means Registerer when it is a
	// Gatherer (as *prometheus.Registry is), else prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Log receives the server's logs. Nil discards them.
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Gatherer == nil {
		if g, ok := c.Registerer.(prometheus.Gatherer); ok {
			c.Gatherer = g
		} else {
			c.Gatherer = prometheus.DefaultGatherer
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first bad field, naming the fix.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("widgetd: Brokers is empty: give the Kafka bootstrap brokers (--brokers host:port)")
	}
	if err := c.Names.Validate(); err != nil {
		return fmt.Errorf("widgetd: Names: %w", err)
	}
	if c.Domain != "" && (strings.ContainsAny(c.Domain, "/: ") || strings.HasPrefix(c.Domain, ".")) {
		return fmt.Errorf("widgetd: Domain %q: give a bare domain such as streamtools.io (no scheme, port or leading dot)", c.Domain)
	}
	if c.HeartbeatInterval < 0 || (c.HeartbeatInterval > 0 && c.HeartbeatInterval < 100*time.Millisecond) {
		return fmt.Errorf("widgetd: HeartbeatInterval %v: use 100ms or more (0 means %v)", c.HeartbeatInterval, DefaultHeartbeatInterval)
	}
	if c.WriteTimeout < 0 {
		return fmt.Errorf("widgetd: WriteTimeout %v: use a positive duration (0 means %v)", c.WriteTimeout, DefaultWriteTimeout)
	}
	if c.MaxConnections < 0 {
		return fmt.Errorf("widgetd: MaxConnections %d: use a positive number (0 means %d)", c.MaxConnections, DefaultMaxConnections)
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("widgetd: ShutdownTimeout %v: use a positive duration (0 means %v)", c.ShutdownTimeout, DefaultShutdownTimeout)
	}
	return nil
}

// Server is a running widgetd: pages, websockets, and the changelog tailer.
type Server struct {
	cfg     Config
	log     *slog.Logger
	app     *fiber.App
	ln      net.Listener
	hub     *hub
	metrics *metrics
	reg     *tenant.Registry
	ownReg  bool
	tail    *tailer
	watch   *kafkautil.BrokerWatch

	caught    chan struct{} // closed once the stats changelog is caught up
	caughtOne sync.Once
	ready     chan struct{} // closed once caught up and the registry is ready

	closing   chan struct{} // closed when shutdown begins: websockets say goodbye
	closeOnce sync.Once
	connMu    sync.Mutex     // orders conns.Add before closing (and so before conns.Wait)
	conns     sync.WaitGroup // open websocket handlers
	freshMu   sync.Mutex
	fresh     map[net.Conn]struct{} // HTTP connections that have not sent a byte yet
	nconns    atomic.Int64
	ran       atomic.Bool
}

// New validates cfg, binds the listener and prepares the server; Run
// serves.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("widgetd: registering metrics: %w", err)
	}
	s := &Server{
		cfg: cfg, log: cfg.Log, hub: newHub(cfg.HeartbeatInterval), metrics: m,
		caught: make(chan struct{}), ready: make(chan struct{}), closing: make(chan struct{}),
		fresh: map[net.Conn]struct{}{},
	}
	s.reg = cfg.Registry
	if s.reg == nil {
		if s.reg, err = tenant.NewRegistry(cfg.Brokers, cfg.Names, cfg.Log); err != nil {
			return nil, fmt.Errorf("widgetd: %w", err)
		}
		s.ownReg = true
	}
	if s.tail, err = newTailer(s); err != nil {
		if s.ownReg {
			s.reg.Close()
		}
		return nil, err
	}
	s.watch = &kafkautil.BrokerWatch{Client: s.tail.cl, Log: s.log,
		DownMessage: "the Kafka brokers do not answer: widgets keep their last totals, /readyz answers 503 until they do"}
	s.reg.OnChange(func() { s.hub.resettle(s.resolveSettings) })
	s.app = s.newApp()
	s.ln = cfg.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			s.tail.cl.Close()
			if s.ownReg {
				s.reg.Close()
			}
			return nil, fmt.Errorf("widgetd: listening on %s: %w (choose another --listen address)", cfg.Addr, err)
		}
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Ready is closed once the tenant registry and the stats table's changelog
// are caught up with their end as of start: from then on snapshots are
// exact.
func (s *Server) Ready() <-chan struct{} { return s.ready }

func (s *Server) caughtUp() {
	s.caughtOne.Do(func() {
		close(s.caught)
		s.log.Info("stats changelog caught up", "day_rows", s.hub.rowCount())
	})
}

// Run serves until ctx is done, then shuts down in order: say goodbye to
// every websocket (close code 1001, pages keep their total and reconnect),
// stop accepting, stop the tailer and the registry. It returns the first
// error of a component. Cancelling ctx more than once is harmless; a
// second Run returns an error.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("widgetd: Run called twice: create a new Server")
	}
	bg, cancelBg := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBg()
	g, gctx := errgroup.WithContext(bg)
	if s.ownReg {
		g.Go(func() error { return s.reg.Run(gctx) })
	}
	g.Go(func() error { return s.tail.run(gctx) })
	g.Go(func() error { s.watch.Run(gctx); return nil })
	g.Go(func() error {
		select {
		case <-s.caught:
		case <-gctx.Done():
			return nil
		}
		select {
		case <-s.reg.Ready():
		case <-gctx.Done():
			return nil
		}
		close(s.ready)
		s.metrics.ready.Set(1)
		return nil
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.app.Listener(s.ln) }()
	s.log.Info("widgetd listening", "addr", s.Addr(), "domain", s.cfg.Domain)

	var runErr error
	select {
	case <-ctx.Done():
	case <-gctx.Done():
		runErr = errors.New("widgetd: a component stopped")
	case err := <-serveErr:
		runErr = fmt.Errorf("widgetd: serving http: %w", err)
	}
	// 1. Close every websocket first, with "going away" (1001): pages keep
	// their last total and reconnect at once (to another instance behind
	// the load balancer, or to this one once restarted). From here on new
	// upgrades get 503. The HTTP server's shutdown comes second, so that
	// no page waits on it.
	s.connMu.Lock()
	s.closeOnce.Do(func() { close(s.closing) })
	s.connMu.Unlock()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.log.Warn("websockets still open after the shutdown timeout", "open", s.nconns.Load())
	}
	// 2. Stop intake: close the listener, finish requests in flight. The
	// HTTP server waits for every connection, and counts one that has not
	// sent a byte yet (a browser's spare, preconnected socket, or the page
	// reconnecting right now) as idle only after 5 s: close those
	// meanwhile, as they carry no request. Their clients retry.
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.app.ShutdownWithTimeout(s.cfg.ShutdownTimeout) }()
	sweep := time.NewTicker(20 * time.Millisecond)
	for stopped := false; !stopped; {
		s.closeFresh()
		select {
		case err := <-httpDone:
			stopped = true
			if err != nil {
				s.log.Warn("shutting down the http server", "err", err)
			}
		case <-sweep.C:
		}
	}
	sweep.Stop()
	// 3. Stop the tailer and the registry.
	cancelBg()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		runErr = errors.Join(runErr, err)
	}
	return runErr
}

// lookup finds the customer and product of w (case-insensitively, since
// hosts are lower case) and returns w with the registered codes.
func (s *Server) lookup(w Widget) (Widget, schemas.Product, error) {
	t, ok := s.reg.Customer(w.Customer)
	if !ok {
		for _, c := range s.reg.Customers() {
			if strings.EqualFold(c.Code, w.Customer) {
				t, ok = c, true
				break
			}
		}
	}
	if !ok {
		return w, schemas.Product{}, refusal(errUnknown, "customer_code", fmt.Sprintf("unknown customer %q: check the customer code in the widget URL your brand gave you", w.Customer), "")
	}
	w.Customer = t.Code
	if len(t.Products) == 0 { // a customer without products accepts any
		return w, schemas.Product{Code: w.Product}, nil
	}
	p, ok := t.Products[w.Product]
	if !ok {
		for code, cand := range t.Products {
			if strings.EqualFold(code, w.Product) {
				p, ok = cand, true
				break
			}
		}
	}
	if !ok {
		return w, schemas.Product{}, refusal(errUnknown, "product", fmt.Sprintf("customer %q has no product %q: check the product in the widget URL", t.Code, w.Product), "")
	}
	w.Product = p.Code
	return w, p, nil
}

func (s *Server) resolveSettings(w Widget, o Overrides) (Settings, bool) {
	_, p, err := s.lookup(w)
	if err != nil {
		return Settings{}, false
	}
	return o.Resolve(p), true
}

func (s *Server) registryReady() bool {
	select {
	case <-s.reg.Ready():
		return true
	default:
		return false
	}
}

func (s *Server) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// newApp builds the routes.
func (s *Server) newApp() *fiber.App {
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		AppName:               "streamtools widgetd",
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		BodyLimit:             4 << 10, // widgetd only serves GETs
		// With it, a connection turns active only once its first byte
		// arrives, so that shutdown can close the ones that never sent
		// one (see connState) instead of waiting for their read timeout.
		ReduceMemoryUsage: true,
		ErrorHandler:      s.errorHandler,
	})
	app.Server().ConnState = s.connState
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})))
	app.Get("/ws/*", s.wsCheck, websocket.New(s.wsServe, websocket.Config{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   256, // clients only send control frames
		WriteBufferSize:  1024,
		WriteBufferPool:  writePool,
	}))
	// Browsers ask for it; without this route it would be read as an
	// influencer named favicon.ico on a host-form widget.
	app.Get("/favicon.ico", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusNoContent) })
	app.Get("/*", s.page)
	// app.Get routes HEAD as well, answered as the GET without the body.
	app.Use(func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderAllow, "GET, HEAD")
		return s.refuse(c, refusal(errMethod, "", "widgetd serves only GET and HEAD requests", ""), false)
	})
	return app
}

// connState keeps track of the connections that have not sent a byte yet
// (fasthttp's StateNew), for shutdown to close.
func (s *Server) connState(c net.Conn, st fasthttp.ConnState) {
	s.freshMu.Lock()
	if st == fasthttp.StateNew {
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
	s.freshMu.Unlock()
}

// closeFresh closes the connections that have not sent a byte yet.
func (s *Server) closeFresh() {
	s.freshMu.Lock()
	for c := range s.fresh {
		_ = c.Close()
		delete(s.fresh, c)
	}
	s.freshMu.Unlock()
}

// writePool shares write buffers between websockets: a widget gets a few
// small messages a second at most, so a buffer per connection would waste
// memory.
var writePool = &sync.Pool{}

func (s *Server) readyz(c *fiber.Ctx) error {
	down := s.watch.Down()
	if s.isReady() && !down {
		return c.JSON(fiber.Map{"status": "ready", "rows": s.hub.rowCount()})
	}
	c.Set(fiber.HeaderRetryAfter, "1")
	what := "reading the stats changelogs"
	switch {
	case down:
		what = "the Kafka brokers do not answer; widgets show their last totals"
	case !s.registryReady():
		what = "reading the customers topic"
	}
	return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "not ready: " + what})
}

// wsParams travel from wsCheck to wsServe.
type wsParams struct {
	w Widget
	o Overrides
}

const localsKey = "widgetd.params"

// wsCheck validates a websocket (or plain GET) request before the upgrade,
// so that errors get a status code and a JSON body.
func (s *Server) wsCheck(c *fiber.Ctx) error {
	// Fiber's strings point into buffers it reuses once the handler
	// returns, and the websocket outlives this handler: copy.
	parts, ok := splitPath(strings.Clone(c.Path()[len("/ws"):])) // the route matched /ws/, in any case
	w, ok2 := widgetFromParts(parts)
	if !ok || !ok2 {
		return s.refuse(c, refusal(errBadPath, "path", "not a widget websocket: use /ws/{customer_code}/{product}/{influencer_id}[/{campaign}] with each part URL-escaped", ""), false)
	}
	if fe := w.check(); fe != nil {
		return s.refuse(c, fe, false)
	}
	q, err := url.ParseQuery(string(c.Request().URI().QueryString()))
	if err != nil {
		return s.refuse(c, errQuery, false)
	}
	o, err := ParseOverrides(q)
	if err != nil {
		return s.refuse(c, err, false)
	}
	if !s.registryReady() {
		return s.refuse(c, refusal(errNotReady, "", "widgetd is starting: retry in a second", ""), false)
	}
	w, p, err := s.lookup(w)
	if err != nil {
		return s.refuse(c, err, false)
	}
	if !websocket.IsWebSocketUpgrade(c) || c.Method() != fiber.MethodGet {
		// A plain GET answers the snapshot, for curl and monitoring; so
		// does a HEAD, upgrade headers or not (a websocket opens on GET
		// only, and the upgrader would answer 426), without the body.
		if !s.isReady() {
			return s.refuse(c, refusal(errNotReady, "", "widgetd is catching up with the stats changelogs: retry in a second", ""), false)
		}
		m := s.hub.snapshot(w, o.Resolve(p), o.Preview)
		m.Type = "snapshot"
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(m)
	}
	if s.isClosing() {
		return s.refuse(c, refusal(errNotReady, "", "widgetd is shutting down: retry in a second", ""), false)
	}
	if s.nconns.Load() >= int64(s.cfg.MaxConnections) {
		return s.refuse(c, refusal(errFull, "", "this widgetd instance is at its connection limit: retry, or add instances", ""), false)
	}
	c.Locals(localsKey, &wsParams{w: w, o: o})
	return c.Next()
}

var (
	prefixSnapshot = []byte(`{"type":"snapshot",`)
	prefixUpdate   = []byte(`{"type":"update",`)
)

// wsServe runs one widget websocket: it waits until the server is caught
// up, sends the snapshot, then updates and heartbeats. The handler
// goroutine writes; a second one reads (control frames only) so that
// closes and dead peers are noticed.
func (s *Server) wsServe(c *websocket.Conn) {
	p, _ := c.Locals(localsKey).(*wsParams)
	ws := c.Conn
	// Registered under connMu so that shutdown, once it has closed
	// closing, waits for every handler that got past this point.
	s.connMu.Lock()
	if s.isClosing() {
		s.connMu.Unlock()
		s.goodbye(ws, nil)
		ws.Close()
		return
	}
	s.conns.Add(1)
	s.connMu.Unlock()
	defer s.conns.Done()
	s.nconns.Add(1)
	s.metrics.connections.Inc()
	defer func() {
		s.nconns.Add(-1)
		s.metrics.connections.Dec()
	}()

	hb := s.cfg.HeartbeatInterval
	deadline := func() { _ = ws.SetReadDeadline(time.Now().Add(3 * hb)) }
	ws.SetReadLimit(1 << 10)
	deadline()
	ws.SetPongHandler(func(string) error { deadline(); return nil })
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
			deadline()
		}
	}()
	defer func() {
		ws.Close()
		<-readerDone // the connection is recycled once this handler returns
	}()

	select {
	case <-s.ready:
	case <-s.closing:
		s.goodbye(ws, readerDone)
		return
	case <-readerDone:
		return
	}
	settings, ok := s.resolveSettings(p.w, p.o)
	if !ok { // the product went away while we waited
		_ = ws.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.ClosePolicyViolation, "unknown widget"), time.Now().Add(s.cfg.WriteTimeout))
		return
	}
	sub := newSubscriber()
	unsubscribe := s.hub.subscribe(p.w, p.o, settings, sub)
	defer unsubscribe()

	ticker := time.NewTicker(hb)
	defer ticker.Stop()
	var hbuf []byte
	for {
		select {
		case <-sub.wake:
			body, snapshot := sub.take()
			if body == nil {
				continue
			}
			prefix, typ := prefixUpdate, "update"
			if snapshot {
				prefix, typ = prefixSnapshot, "snapshot"
			}
			// Counted before the write: a client that reads the message
			// and then the metrics sees it counted.
			s.metrics.messages.WithLabelValues(typ).Inc()
			if err := s.write(ws, prefix, body[1:]); err != nil {
				return
			}
		case now := <-ticker.C:
			dl := now.Add(s.cfg.WriteTimeout)
			if err := ws.WriteControl(fws.PingMessage, nil, dl); err != nil {
				return
			}
			hbuf = fmt.Appendf(hbuf[:0], `{"type":"heartbeat","ts":%d}`, now.UnixMilli())
			if err := s.write(ws, hbuf, nil); err != nil {
				return
			}
			s.metrics.messages.WithLabelValues("heartbeat").Inc()
		case <-readerDone:
			return
		case <-s.closing:
			s.goodbye(ws, readerDone)
			return
		}
	}
}

func (s *Server) write(ws *fws.Conn, a, b []byte) error {
	_ = ws.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	w, err := ws.NextWriter(fws.TextMessage)
	if err != nil {
		return err
	}
	if _, err := w.Write(a); err != nil {
		return err
	}
	if len(b) > 0 {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Close()
}

// goodbyeWait bounds how long goodbye waits for the page to answer the
// close frame.
const goodbyeWait = time.Second

// goodbye tells the page that the server goes away (1001 "widgetd
// restarting"), so it keeps its total and reconnects at once (to another
// instance behind the load balancer, or to this one once restarted). When
// readerDone is given it then waits, up to goodbyeWait, for the page's
// close frame, so that the close handshake completes cleanly.
func (s *Server) goodbye(ws *fws.Conn, readerDone <-chan struct{}) {
	err := ws.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseGoingAway, "widgetd restarting"), time.Now().Add(goodbyeWait))
	if err != nil || readerDone == nil {
		return
	}
	t := time.NewTimer(goodbyeWait)
	defer t.Stop()
	select {
	case <-readerDone:
	case <-t.C:
	}
}

func (s *Server) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}
