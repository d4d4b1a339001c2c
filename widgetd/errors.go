package widgetd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Kinds of refusal. Every error answer of widgetd is a *FieldError of one
// of these kinds, and statusTable says how it is answered: handlers say
// what went wrong, the table gives the status.
var (
	errBadPath  = errors.New("widgetd: not a widget URL")
	errBadID    = errors.New("widgetd: an id holds a control or bidirectional formatting character")
	errBadParam = errors.New("widgetd: bad URL parameter")
	errUnknown  = errors.New("widgetd: unknown customer or product")
	errNotReady = errors.New("widgetd: not ready")
	errFull     = errors.New("widgetd: at the connection limit")
	errMethod   = errors.New("widgetd: method not allowed")
)

// statusTable maps each kind of refusal to its answer: the status, the
// Retry-After seconds (0: none), the reason counted in
// streamtools_widgetd_connections_rejected_total for a /ws request (empty:
// not counted), and for the widget page (a human, or OBS) the title of its
// error card and how often it reloads by itself (seconds; 0: never). A /ws
// request gets the JSON {"error": "...", "field": "..."}: what to change,
// and the part of the URL at fault. An error of no kind is a bug: 500
// {"error": "internal error"}, logged. TestErrorTable walks it.
var statusTable = []struct {
	kind       error
	status     int
	retryAfter int
	reason     string
	title      string // of the page; ": {field}" is added where withField
	withField  bool
	refresh    int
}{
	{errBadPath, 404, 0, "bad_request", "Not a widget URL", false, 0},
	{errBadID, 400, 0, "bad_request", "Bad widget URL", true, 0},
	{errBadParam, 400, 0, "bad_request", "Bad widget parameter", true, 0},
	// A widget set up before its customer or product exists starts
	// working by itself.
	{errUnknown, 404, 0, "not_found", "Widget not found", false, 30},
	{errNotReady, 503, 1, "not_ready", "Starting", false, 2},
	{errFull, 503, 5, "limit", "Busy", false, 5},
	{errMethod, 405, 0, "", "Method not allowed", false, 0},
}

// errQuery answers a query string that does not parse.
var errQuery = refusal(errBadParam, "query", "the query string does not parse: escape each parameter value with encodeURIComponent",
	"For example title=My%20goal, color=ff0000.")

// refusal returns a refusal of kind: field names the part of the URL to
// change (or is empty), msg says how; hint, for the page only, says more.
func refusal(kind error, field, msg, hint string) *FieldError {
	return &FieldError{kind: kind, Field: field, Msg: msg, hint: hint}
}

// refuse answers err as statusTable says: as an error card on the widget
// page when page is set, else as JSON.
func (s *Server) refuse(c *fiber.Ctx, err error, page bool) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		s.log.Error("internal error", "path", c.Path(), "err", err)
		return c.Status(fiber.StatusInternalServerError).JSON(fiber.Map{"error": "internal error"})
	}
	for _, row := range statusTable {
		if !errors.Is(fe, row.kind) {
			continue
		}
		if row.retryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(row.retryAfter))
		}
		if page {
			title := row.title
			if row.withField && fe.Field != "" {
				title += ": " + fe.Field
			}
			hint := fe.hint
			if hint == "" && row.refresh > 0 {
				hint = fmt.Sprintf("This page checks again every %d seconds.", row.refresh)
			}
			return s.errorPage(c, errorData{Status: row.status, Title: title, Message: fe.Msg, Hint: hint, Refresh: row.refresh})
		}
		if row.reason != "" {
			s.metrics.rejected.WithLabelValues(row.reason).Inc()
		}
		body := fiber.Map{"error": fe.Msg}
		if fe.Field != "" {
			body["field"] = fe.Field
		}
		return c.Status(row.status).JSON(body)
	}
	s.log.Error("internal error: a refusal of no kind", "path", c.Path(), "err", err)
	return c.Status(fiber.StatusInternalServerError).JSON(fiber.Map{"error": "internal error"})
}

// errorHandler answers what the handlers return unanswered and Fiber's
// own errors (a body over the limit, a panic) as JSON. Fiber's errors
// carry fixed status texts; any other error is internal, and its text is
// not sent.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return c.Status(fe.Code).JSON(fiber.Map{"error": strings.ToLower(fe.Message)})
	}
	return s.refuse(c, err, false)
}
