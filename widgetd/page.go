package widgetd

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The page, its style and its script are embedded: the widget works
// offline and needs no CDN.
//
//go:embed assets/widget.html assets/widget.css assets/widget.js assets/error.html
var assets embed.FS

var (
	widgetTmpl = template.Must(template.ParseFS(assets, "assets/widget.html"))
	errorTmpl  = template.Must(template.ParseFS(assets, "assets/error.html"))
	widgetCSS  = mustRead("assets/widget.css")
	widgetJS   = mustRead("assets/widget.js")
)

func mustRead(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return string(b)
}

// pageConfig is handed to the page's script as JSON.
type pageConfig struct {
	WS          string   `json:"ws"`
	Preview     bool     `json:"preview"`
	Settings    Settings `json:"settings"`
	HeartbeatMS int64    `json:"heartbeat_ms"`
}

type pageData struct {
	Title  string
	CSS    template.CSS
	JS     template.JS
	Config pageConfig
}

type errorData struct {
	Status  int
	Title   string
	Message string
	Hint    string
	Refresh int // seconds; 0 never reloads
}

// page serves the widget page, at the host form
// <product>-widget-<customer>.<domain>/{influencer_id}[/{campaign}] or the
// path form /{customer_code}/{product}/{influencer_id}[/{campaign}].
func (s *Server) page(c *fiber.Ctx) error {
	parts, ok := splitPath(strings.Clone(c.Path())) // Fiber reuses the buffer
	var w Widget
	hostProduct, hostCustomer, isHost := ParseHost(c.Hostname(), s.cfg.Domain)
	switch {
	case isHost && ok && (len(parts) == 1 || len(parts) == 2):
		w = Widget{Customer: hostCustomer, Product: hostProduct, Influencer: parts[0]}
		if len(parts) == 2 {
			w.Campaign, w.HasCampaign = parts[1], true
		}
	case isHost:
		return s.refuse(c, refusal(errBadPath, "path", "This address names no influencer.",
			fmt.Sprintf("Use https://%s-widget-%s.%s/{influencer_id} or …/{influencer_id}/{campaign}.", hostProduct, hostCustomer, s.cfg.Domain)), true)
	default:
		w, ok = widgetFromParts(parts)
		if !ok {
			return s.refuse(c, refusal(errBadPath, "path", "StreamTools widgets live at /{customer_code}/{product}/{influencer_id}, optionally followed by /{campaign}.",
				fmt.Sprintf("The public form is https://{product}-widget-{customer_code}.%s/{influencer_id}/{campaign}.", s.cfg.Domain)), true)
		}
	}
	if fe := w.check(); fe != nil {
		return s.refuse(c, fe, true)
	}
	q, err := url.ParseQuery(string(c.Request().URI().QueryString()))
	if err != nil {
		return s.refuse(c, errQuery, true)
	}
	o, err := ParseOverrides(q)
	if err != nil {
		return s.refuse(c, err, true)
	}
	if !s.registryReady() {
		return s.refuse(c, refusal(errNotReady, "", "The widget server is starting.", ""), true)
	}
	w, p, err := s.lookup(w)
	if err != nil {
		return s.refuse(c, err, true)
	}
	settings := o.Resolve(p)
	var buf bytes.Buffer
	err = widgetTmpl.Execute(&buf, pageData{
		Title: settings.Title, CSS: template.CSS(widgetCSS), JS: template.JS(widgetJS),
		Config: pageConfig{WS: w.wsPath(), Preview: o.Preview, Settings: settings, HeartbeatMS: s.cfg.HeartbeatInterval.Milliseconds()},
	})
	if err != nil {
		return fmt.Errorf("rendering the widget page: %w", err)
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Type("html", "utf-8")
	return c.Send(buf.Bytes())
}

// errorPage answers a human (or OBS) with a readable page.
func (s *Server) errorPage(c *fiber.Ctx, d errorData) error {
	var buf bytes.Buffer
	if err := errorTmpl.Execute(&buf, d); err != nil {
		return fmt.Errorf("rendering the error page: %w", err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Type("html", "utf-8")
	return c.Status(d.Status).Send(buf.Bytes())
}
