// Package dashboard is the brands' dashboard: server pages and a JSON API
// over the Postgres BI contract (tables events and daily_stats, written by
// sinks/), with per-customer logins.
//
// It reads Postgres; it never talks to Kafka: the products' widget
// settings, which live on the customers topic, come through
// Config.Products (cmd/streamtools tails the topic). Every query gets its
// customer from the session (newQuery is the only way to start a WHERE
// clause and takes the customer first); no request parameter can name
// another customer. It owns the schema "dashboard" (logins and sessions,
// migrations 00100 and later in sinks/migrations) and nothing else: the
// sink owns the BI tables, widgetd serves the widget this package links to.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/streamtools/streamtools/schemas"
)

// Config of the dashboard server. The zero value of each field means its
// documented default.
type Config struct {
	// Addr is the listen address of Run. Default "127.0.0.1:8082".
	Addr string
	// WidgetBaseURL is widgetd's base URL, for the widget's path form
	// {base}/{customer}/{product}/{influencer}[/{campaign}] and for the
	// live preview. Default "http://127.0.0.1:8081".
	WidgetBaseURL string
	// WidgetDomain is the domain of the widget's public host form
	// https://{product}-widget-{customer}.{domain}/{influencer}/{campaign}.
	// Default "streamtools.io".
	WidgetDomain string
	// SessionTTL is how long a login lasts. Default 7 days.
	SessionTTL time.Duration
	// CookieSecure adds the Secure attribute to cookies: set it when the
	// dashboard is served over HTTPS (behind a proxy). Default false, for
	// http://127.0.0.1.
	CookieSecure bool
	// RefreshInterval is how often the pages poll the JSON API. Default and
	// maximum 5 s; minimum 500 ms.
	RefreshInterval time.Duration
	// LoginFailures is how many wrong passwords a login may see per
	// LoginWindow before it gets 429. Default 5 per 15 minutes.
	LoginFailures int
	LoginWindow   time.Duration
	// ClientAttempts is how many login attempts one client address may make
	// per minute, whatever the login. Default 20.
	ClientAttempts int
	// QueryTimeout bounds each page and API query. Default 10 s.
	QueryTimeout time.Duration
	// ExportTimeout bounds one CSV export, which streams every row. Default
	// 1 hour.
	ExportTimeout time.Duration
	// MaxExports bounds the CSV exports running at once (each holds a
	// database connection while it streams); more get 429. Default 4.
	MaxExports int
	// ProxyHeader names the header that carries the client address when a
	// reverse proxy fronts the dashboard (e.g. X-Forwarded-For), for the
	// per-client login limit. Default none: the peer address.
	ProxyHeader string
	// Products returns a customer's products as its widgets see them (the
	// customers topic), so that the influencers page can say beside the
	// preview which event types a widget counts. Default nil: no such
	// note; ok false (the customer is not known there yet) leaves it out
	// too. Called once per GET /api/v1/widgets; safe for concurrent use.
	Products func(customer string) (products map[string]schemas.Product, ok bool)
	// Log receives the server's logs. Default: discard.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8082"
	}
	if c.WidgetBaseURL == "" {
		c.WidgetBaseURL = "http://127.0.0.1:8081"
	}
	if c.WidgetDomain == "" {
		c.WidgetDomain = "streamtools.io"
	}
	def(&c.SessionTTL, 7*24*time.Hour)
	def(&c.RefreshInterval, 5*time.Second)
	def(&c.LoginWindow, 15*time.Minute)
	def(&c.QueryTimeout, 10*time.Second)
	def(&c.ExportTimeout, time.Hour)
	if c.LoginFailures == 0 {
		c.LoginFailures = 5
	}
	if c.ClientAttempts == 0 {
		c.ClientAttempts = 20
	}
	if c.MaxExports == 0 {
		c.MaxExports = 4
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the configuration (after defaults), naming the field and
// the fix.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("dashboard: Addr %q: use host:port, e.g. 127.0.0.1:8082", c.Addr)
	}
	u, err := url.Parse(c.WidgetBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return fmt.Errorf("dashboard: WidgetBaseURL %q: use an http(s) URL without query, e.g. http://127.0.0.1:8081", c.WidgetBaseURL)
	}
	if strings.ContainsAny(c.WidgetDomain, "/:@ ") || strings.Trim(c.WidgetDomain, ".") != c.WidgetDomain {
		return fmt.Errorf("dashboard: WidgetDomain %q: use a bare domain such as streamtools.io", c.WidgetDomain)
	}
	if c.RefreshInterval < 500*time.Millisecond || c.RefreshInterval > 5*time.Second {
		return fmt.Errorf("dashboard: RefreshInterval %v: use 500ms to 5s (the data is promised at most 5 s old)", c.RefreshInterval)
	}
	for name, d := range map[string]time.Duration{"SessionTTL": c.SessionTTL, "LoginWindow": c.LoginWindow,
		"QueryTimeout": c.QueryTimeout, "ExportTimeout": c.ExportTimeout} {
		if d < 0 {
			return fmt.Errorf("dashboard: %s %v: use a positive duration (0 means the default)", name, d)
		}
	}
	if c.LoginFailures < 0 || c.ClientAttempts < 0 || c.MaxExports < 0 {
		return errors.New("dashboard: LoginFailures, ClientAttempts and MaxExports: use positive numbers (0 means the default)")
	}
	return nil
}

// Server is the dashboard. Create it with New, serve with Run or Serve.
type Server struct {
	cfg     Config
	db      DB
	log     *slog.Logger
	app     *fiber.App
	pages   *template.Template
	limiter *loginLimiter
	exports chan struct{} // a slot per running export
	// base is the context of exports, which outlive their handler; Serve
	// cancels it after shutdown.
	base       context.Context
	cancelBase context.CancelFunc
	csp        string
}

// New returns a server reading db (a *pgxpool.Pool in production).
func New(cfg Config, db DB) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("dashboard: New: db is nil: pass a *pgxpool.Pool")
	}
	cfg = cfg.withDefaults()
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, db: db, log: cfg.Log, pages: pages,
		limiter: newLoginLimiter(cfg.LoginFailures, cfg.LoginWindow, cfg.ClientAttempts, time.Minute),
		exports: make(chan struct{}, cfg.MaxExports)}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	wu, _ := url.Parse(cfg.WidgetBaseURL)
	s.csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"frame-src " + wu.Scheme + "://" + wu.Host + " https://*." + cfg.WidgetDomain + "; " +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
	s.app = fiber.New(fiber.Config{
		AppName:               "streamtools-dashboard",
		DisableStartupMessage: true,
		ReadTimeout:           15 * time.Second,
		// A CSV export streams for as long as it needs; fasthttp sets the
		// write deadline once per response.
		WriteTimeout: cfg.ExportTimeout,
		IdleTimeout:  90 * time.Second,
		BodyLimit:    64 << 10,
		Concurrency:  16 << 10,
		ErrorHandler: s.errorHandler,
		ProxyHeader:  cfg.ProxyHeader,
	})
	s.routes()
	return s, nil
}

// Handler returns the Fiber app, for tests (app.Test) and for mounting.
func (s *Server) Handler() *fiber.App { return s.app }

// Run listens on Config.Addr and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dashboard: listening on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down: it stops
// accepting, lets requests finish for up to 10 s, then cancels exports.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("dashboard listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(ln) }()
	select {
	case err := <-errc:
		s.cancelBase()
		return fmt.Errorf("dashboard: serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.app.ShutdownWithContext(sctx)
	s.cancelBase()
	if lerr := <-errc; lerr != nil {
		err = errors.Join(err, lerr)
	}
	if err != nil {
		return fmt.Errorf("dashboard: shutting down: %w", err)
	}
	return nil
}

// LoginURL is the URL of the login page for login on a server at addr.
func LoginURL(addr, login string) string {
	return "http://" + addr + "/login?login=" + url.QueryEscape(login)
}
