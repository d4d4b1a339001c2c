package dashboard

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	sessionCookie = "st_session"
	loginCSRF     = "st_login_csrf"
	csrfHeader    = "X-CSRF-Token"
)

// apiError is an error with its HTTP status and the request field to fix.
type apiError struct {
	Status int
	Msg    string
	Field  string
}

func (e *apiError) Error() string { return e.Msg }

func badField(field, msg string) *apiError {
	return &apiError{Status: fiber.StatusBadRequest, Msg: msg, Field: field}
}

// errorHandler maps errors to JSON for the API and to a plain page for the
// rest. Unexpected errors are logged and answered without details: a
// Postgres error (a bug) with 500, anything else (Postgres unreachable,
// the common case) with 503 and Retry-After.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var status int
	var body fiber.Map
	var ae *apiError
	var fe *fiber.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ae):
		status, body = ae.Status, fiber.Map{"error": ae.Msg}
		if ae.Field != "" {
			body["field"] = ae.Field
		}
	case errors.As(err, &fe):
		status, body = fe.Code, fiber.Map{"error": fe.Message}
	case errors.Is(err, context.DeadlineExceeded):
		status, body = fiber.StatusServiceUnavailable, fiber.Map{"error": "the query took too long; narrow the date range or the filters"}
		c.Set(fiber.HeaderRetryAfter, "5")
	case errors.As(err, &pe):
		s.log.Error("dashboard request", "method", c.Method(), "route", c.Route().Path, "err", err)
		status, body = fiber.StatusInternalServerError, fiber.Map{"error": "internal error; the details are in the dashboard's log"}
	default:
		s.log.Error("dashboard request", "method", c.Method(), "route", c.Route().Path, "err", err)
		status, body = fiber.StatusServiceUnavailable, fiber.Map{"error": "the database is unavailable; retry in a few seconds"}
		c.Set(fiber.HeaderRetryAfter, "5")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if strings.HasPrefix(c.Path(), "/api/") {
		return c.Status(status).JSON(body)
	}
	c.Status(status)
	return s.render(c, "error", pageData{Title: "Error", Error: fmt.Sprint(body["error"]), Status: status})
}

func (s *Server) routes() {
	app := s.app
	app.Use(s.headers)
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", s.readyz)
	app.Get("/assets/:file", s.asset)
	app.Get("/login", s.loginPage)
	app.Post("/login", s.loginForm)
	app.Post("/api/v1/login", s.loginJSON)

	// Everything below needs a session.
	app.Get("/", s.page("overview"))
	app.Get("/influencers", s.page("influencers"))
	app.Post("/logout", s.logout)
	app.Post("/api/v1/logout", s.logout)
	app.Get("/api/v1/me", s.me)
	app.Get("/api/v1/options", s.optionsAPI)
	app.Get("/api/v1/widgets", s.widgetsAPI)
	app.Get("/api/v1/summary", s.summaryAPI)
	app.Get("/api/v1/overview", s.overviewAPI)
	app.Get("/api/v1/views/:view", s.viewAPI)
	// GET only: app.Get also routes HEAD, which would run the whole
	// export to send its headers.
	app.Add(fiber.MethodGet, "/api/v1/export/:view.csv", s.exportCSV)
	// No route for the method: once the chain runs out, Fiber's router
	// answers ErrMethodNotAllowed, with the Allow header set, when other
	// methods have a route for the path, and 404 otherwise.
	app.Use(func(c *fiber.Ctx) error {
		if err := c.Next(); errors.Is(err, fiber.ErrMethodNotAllowed) {
			return &apiError{Status: fiber.StatusMethodNotAllowed,
				Msg: fmt.Sprintf("method %s is not allowed here (allowed: %s): the pages and API routes are listed in docs/dashboard.md",
					c.Method(), c.GetRespHeader(fiber.HeaderAllow))}
		}
		return &apiError{Status: fiber.StatusNotFound, Msg: "no such page: the pages and API routes are listed in docs/dashboard.md"}
	})
}

// publicRoutes need no session; every other route does.
var publicRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/login": true, "/api/v1/login": true}

// headers sets the security headers of every response and enforces the
// session on every route but the public ones.
func (s *Server) headers(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", s.csp)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "same-origin")
	if strings.HasPrefix(c.Path(), "/api/") {
		c.Set(fiber.HeaderCacheControl, "no-store")
	}
	if publicRoutes[c.Path()] || strings.HasPrefix(c.Path(), "/assets/") {
		return c.Next()
	}
	token := c.Cookies(sessionCookie)
	var sess session
	ok := false
	if token != "" {
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.QueryTimeout)
		defer cancel()
		var err error
		if sess, ok, err = lookupSession(ctx, s.db, token); err != nil {
			return err
		}
	}
	if !ok {
		if strings.HasPrefix(c.Path(), "/api/") || c.Method() != fiber.MethodGet {
			return &apiError{Status: fiber.StatusUnauthorized, Msg: "not logged in: POST /api/v1/login or open /login"}
		}
		return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	c.Locals("session", sess)
	if c.Method() == fiber.MethodPost {
		got := c.Get(csrfHeader)
		if got == "" {
			got = c.FormValue("_csrf")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) != 1 {
			return &apiError{Status: fiber.StatusForbidden, Msg: "missing or wrong CSRF token: send the X-CSRF-Token header (from /api/v1/me) or reload the page", Field: "_csrf"}
		}
	}
	return c.Next()
}

// sessionOf is the session the headers middleware stored; the customer of
// every query comes from it.
func sessionOf(c *fiber.Ctx) session { return c.Locals("session").(session) }

func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	var one int
	if err := s.db.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		c.Set(fiber.HeaderRetryAfter, "5")
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "the database does not answer"})
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

func (s *Server) setSessionCookie(c *fiber.Ctx, token string) {
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: token, Path: "/", HTTPOnly: true, Secure: s.cfg.CookieSecure,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Now().Add(s.cfg.SessionTTL)})
}

// loginToken returns the login form's CSRF token, setting its cookie
// (double submit: the form must echo the cookie) when absent.
func (s *Server) loginToken(c *fiber.Ctx) string {
	token := c.Cookies(loginCSRF)
	if len(token) != 64 {
		token = randomToken()
		c.Cookie(&fiber.Cookie{Name: loginCSRF, Value: token, Path: "/", HTTPOnly: true, Secure: s.cfg.CookieSecure,
			SameSite: fiber.CookieSameSiteStrictMode, Expires: time.Now().Add(12 * time.Hour)})
	}
	return token
}

func (s *Server) loginPage(c *fiber.Ctx) error {
	// Already logged in (the dev banner's link opened twice): go on.
	if token := c.Cookies(sessionCookie); token != "" {
		ctx, cancel := s.queryCtx(c)
		_, ok, err := lookupSession(ctx, s.db, token)
		cancel()
		if err == nil && ok {
			return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
		}
	}
	return s.render(c, "login", pageData{Title: "Log in", CSRF: s.loginToken(c), LoginName: c.Query("login"), Next: safeNext(c.Query("next"))})
}

// safeNext keeps a redirect target on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// login checks the rate limits and the password and opens a session.
func (s *Server) login(c *fiber.Ctx, login, password string) (session, error) {
	if ok, wait := s.limiter.allow(c.IP(), login); !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds())+1))
		return session{}, &apiError{Status: fiber.StatusTooManyRequests,
			Msg: fmt.Sprintf("too many login attempts; retry in %d s", int(wait.Seconds())+1)}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.QueryTimeout)
	defer cancel()
	u, err := Authenticate(ctx, s.db, login, password)
	if errors.Is(err, ErrBadPassword) {
		s.limiter.failed(login)
		return session{}, &apiError{Status: fiber.StatusUnauthorized, Msg: "wrong login or password", Field: "password"}
	}
	if err != nil {
		return session{}, err
	}
	s.limiter.succeeded(login)
	token, sess, err := createSession(ctx, s.db, u, s.cfg.SessionTTL)
	if err != nil {
		return session{}, err
	}
	s.setSessionCookie(c, token)
	s.log.Info("dashboard login", "customer", u.CustomerCode, "login", u.Login)
	return sess, nil
}

func (s *Server) loginForm(c *fiber.Ctx) error {
	want := c.Cookies(loginCSRF)
	got := c.FormValue("_csrf")
	next := safeNext(c.FormValue("next"))
	data := pageData{Title: "Log in", CSRF: s.loginToken(c), LoginName: c.FormValue("login"), Next: next}
	if len(want) != 64 || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		data.Error = "This login form expired. Please try again."
		return s.render(c.Status(fiber.StatusForbidden), "login", data)
	}
	if _, err := s.login(c, c.FormValue("login"), c.FormValue("password")); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			return err
		}
		data.Error = ae.Msg
		if ae.Status == fiber.StatusUnauthorized {
			data.Error = "Wrong login or password."
		}
		c.Status(ae.Status)
		return s.render(c, "login", data)
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// loginJSON is the API's login: a JSON body cannot be sent cross-site
// without a CORS preflight, which the dashboard never grants, so it needs
// no CSRF token.
func (s *Server) loginJSON(c *fiber.Ctx) error {
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationJSON) {
		return &apiError{Status: fiber.StatusUnsupportedMediaType, Msg: "send Content-Type: application/json", Field: "Content-Type"}
	}
	var body struct {
		Login    string `json:"login"`
		Password string `json:"password"`
	}
	if err := c.BodyParser(&body); err != nil {
		return badField("body", `send {"login": "...", "password": "..."}`)
	}
	if body.Login == "" {
		return badField("login", "login is required")
	}
	sess, err := s.login(c, body.Login, body.Password)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"customer_code": sess.Customer, "login": sess.Login, "csrf_token": sess.CSRF})
}

func (s *Server) logout(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.QueryTimeout)
	defer cancel()
	if err := deleteSession(ctx, s.db, c.Cookies(sessionCookie)); err != nil {
		return err
	}
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: "", Path: "/", HTTPOnly: true, Secure: s.cfg.CookieSecure,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(1, 0)})
	if strings.HasPrefix(c.Path(), "/api/") {
		return c.JSON(fiber.Map{"status": "logged out"})
	}
	return c.Redirect("/login", fiber.StatusSeeOther)
}

func (s *Server) me(c *fiber.Ctx) error {
	sess := sessionOf(c)
	return c.JSON(fiber.Map{"customer_code": sess.Customer, "login": sess.Login, "csrf_token": sess.CSRF,
		"refresh_ms": s.cfg.RefreshInterval.Milliseconds(), "widget_base_url": s.cfg.WidgetBaseURL})
}

// filterOf parses the filter parameters of a request.
func (s *Server) filterOf(ctx context.Context, c *fiber.Ctx, customer string) (Filter, error) {
	var f Filter
	day := func(name string) (time.Time, error) {
		v := c.Query(name)
		if v == "" {
			return time.Time{}, nil
		}
		d, err := time.Parse(dayLayout, v)
		if err != nil {
			return time.Time{}, badField(name, fmt.Sprintf("%s %q: use a day as YYYY-MM-DD", name, v))
		}
		return d, nil
	}
	var err error
	if f.From, err = day("from"); err != nil {
		return f, err
	}
	if f.To, err = day("to"); err != nil {
		return f, err
	}
	if f.To.IsZero() {
		if f.To, err = s.defaultTo(ctx, customer); err != nil {
			return f, err
		}
	}
	if f.From.IsZero() {
		f.From = f.To.AddDate(0, 0, -29)
	}
	if f.From.After(f.To) {
		return f, badField("from", "from is after to: swap them")
	}
	if f.To.Sub(f.From) > MaxRangeDays*24*time.Hour {
		return f, badField("from", fmt.Sprintf("the range spans more than %d days: narrow it (the CSV export of events has no such limit per request, but needs a range too)", MaxRangeDays))
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"product", &f.Product}, {"influencer", &f.Influencer}, {"campaign", &f.Campaign}, {"event_type", &f.EventType}} {
		v := c.Query(p.name)
		if len(v) > 512 {
			return f, badField(p.name, p.name+" is longer than 512 bytes: no stored value is that long")
		}
		*p.dst = v
	}
	return f, nil
}

func (s *Server) queryCtx(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), s.cfg.QueryTimeout)
}

// scoped opens a query for the session's customer (taken from the session,
// never from a request parameter: that is what keeps brands apart) under
// the request's filter. The caller cancels ctx when err is nil.
func (s *Server) scoped(c *fiber.Ctx) (ctx context.Context, cancel context.CancelFunc, customer string, f Filter, err error) {
	ctx, cancel = s.queryCtx(c)
	customer = sessionOf(c).Customer
	if f, err = s.filterOf(ctx, c, customer); err != nil {
		cancel()
		return nil, nil, "", Filter{}, err
	}
	return ctx, cancel, customer, f, nil
}

func (s *Server) optionsAPI(c *fiber.Ctx) error {
	ctx, cancel := s.queryCtx(c)
	defer cancel()
	o, err := s.options(ctx, sessionOf(c).Customer)
	if err != nil {
		return err
	}
	return c.JSON(o)
}

func filterJSON(f Filter) fiber.Map {
	return fiber.Map{"from": f.From.Format(dayLayout), "to": f.To.Format(dayLayout), "product": f.Product,
		"influencer": f.Influencer, "campaign": f.Campaign, "event_type": f.EventType}
}

func (s *Server) summaryAPI(c *fiber.Ctx) error {
	ctx, cancel, customer, f, err := s.scoped(c)
	if err != nil {
		return err
	}
	defer cancel()
	t, err := s.totals(ctx, customer, f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"filter": filterJSON(f), "totals": t})
}

// overviewTop is how many rows of each breakdown the overview returns.
const overviewTop = 10

// overviewAPI is everything the overview page shows, in one poll.
func (s *Server) overviewAPI(c *fiber.Ctx) error {
	ctx, cancel, customer, f, err := s.scoped(c)
	if err != nil {
		return err
	}
	defer cancel()
	t, err := s.totals(ctx, customer, f)
	if err != nil {
		return err
	}
	out := fiber.Map{"filter": filterJSON(f), "totals": t, "generated_at": time.Now().UTC().Format(time.RFC3339)}
	tables := fiber.Map{}
	for _, name := range viewNames {
		limit := overviewTop
		switch name {
		case "days":
			limit = MaxRangeDays + 1
		case "events":
			limit = 20
		}
		rows, more, err := s.rowsOf(ctx, views[name], customer, f, limit, 0)
		if err != nil {
			return err
		}
		tables[name] = fiber.Map{"rows": rows, "more": more}
	}
	out["views"] = tables
	return c.JSON(out)
}

func viewOf(c *fiber.Ctx) (*view, error) {
	v, ok := views[c.Params("view")]
	if !ok {
		return nil, &apiError{Status: fiber.StatusNotFound, Field: "view",
			Msg: fmt.Sprintf("unknown view %q: use one of %s", c.Params("view"), strings.Join(viewNames, ", "))}
	}
	return v, nil
}

func (s *Server) viewAPI(c *fiber.Ctx) error {
	v, err := viewOf(c)
	if err != nil {
		return err
	}
	limit, offset := 100, 0
	if l := c.Query("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 5000 {
			return badField("limit", "limit: use 1 to 5000 (the CSV export has no limit)")
		}
	}
	if o := c.Query("offset"); o != "" {
		if offset, err = strconv.Atoi(o); err != nil || offset < 0 {
			return badField("offset", "offset: use a number from 0")
		}
	}
	ctx, cancel, customer, f, err := s.scoped(c)
	if err != nil {
		return err
	}
	defer cancel()
	rows, more, err := s.rowsOf(ctx, v, customer, f, limit, offset)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"view": v.Name, "title": v.Title, "columns": v.AllColumns(), "filter": filterJSON(f),
		"rows": rows, "limit": limit, "offset": offset, "more": more})
}

// exportCSV streams every row of a view: the query runs as the handler
// returns and rows go to the client as Postgres sends them, flushed every
// few hundred rows, so memory stays flat whatever the row count.
func (s *Server) exportCSV(c *fiber.Ctx) error {
	v, err := viewOf(c)
	if err != nil {
		return err
	}
	customer := sessionOf(c).Customer
	qctx, qcancel := s.queryCtx(c)
	f, err := s.filterOf(qctx, c, customer)
	qcancel()
	if err != nil {
		return err
	}
	select {
	case s.exports <- struct{}{}:
	default:
		c.Set(fiber.HeaderRetryAfter, "30")
		return &apiError{Status: fiber.StatusTooManyRequests, Msg: fmt.Sprintf("%d exports are running; retry when one is done", cap(s.exports))}
	}
	sql, args := v.build(customer, f)
	ctx, cancelCtx := context.WithTimeout(s.base, s.cfg.ExportTimeout)
	cancel := func() {
		cancelCtx()
		<-s.exports
	}
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return fmt.Errorf("exporting %s: %w", v.Name, err)
	}
	// The first row (or the error) arrives before the status is sent.
	first := rows.Next()
	if !first {
		if err := rows.Err(); err != nil {
			rows.Close()
			cancel()
			return fmt.Errorf("exporting %s: %w", v.Name, err)
		}
	}
	name := fmt.Sprintf("streamtools-%s-%s-%s_%s.csv", customer, v.Name, f.From.Format(dayLayout), f.To.Format(dayLayout))
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+strings.NewReplacer(`"`, "", "\\", "", "\r", "", "\n", "").Replace(name)+`"`)
	cols := v.AllColumns()
	log := s.log
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		defer rows.Close()
		cw := csv.NewWriter(w)
		header := make([]string, len(cols))
		for i, col := range cols {
			header[i] = col.Name
		}
		_ = cw.Write(header)
		record := make([]string, len(cols))
		n := 0
		for ok := first; ok; ok = rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				log.Error("dashboard export", "view", v.Name, "err", err)
				return
			}
			if v.extra != nil {
				vals = append(vals, v.extra(s, customer, f, vals)...)
			}
			for i, col := range cols {
				record[i] = csvValue(col.Kind, vals[i])
			}
			_ = cw.Write(record)
			if n++; n%500 == 0 {
				cw.Flush()
				if err := w.Flush(); err != nil {
					return // the client went away; the deferred cancel stops the query
				}
			}
		}
		if err := rows.Err(); err != nil {
			// The status is gone; a last line tells the reader the file is cut.
			log.Error("dashboard export", "view", v.Name, "rows", n, "err", err)
			_ = cw.Write([]string{"# export interrupted: " + err.Error()})
		}
		cw.Flush()
		_ = w.Flush()
	})
	return nil
}
