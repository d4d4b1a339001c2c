package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"path"

	"github.com/gofiber/fiber/v2"
)

// The pages are rendered on the server (layout, navigation, login, the
// filter bar); assets/app.js fills them from the JSON API and polls it.
// Charts are hand-written SVG (assets/app.js): no chart library, no CDN.
//
//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// assetVersion changes with any asset, so that asset URLs can be cached.
var assetVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := assetFS.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))[:12]
}()

type pageData struct {
	Title     string
	Page      string
	Customer  string
	Login     string
	CSRF      string
	Error     string
	Status    int
	LoginName string
	Next      string
	RefreshMS int64
	WidgetURL string
	Version   string
}

func parsePages() (*template.Template, error) {
	t, err := template.New("").ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: parsing page templates: %w", err)
	}
	return t, nil
}

func (s *Server) render(c *fiber.Ctx, name string, d pageData) error {
	d.Version = assetVersion
	if d.Page == "" {
		d.Page = name
	}
	var b bytes.Buffer
	if err := s.pages.ExecuteTemplate(&b, name+".html", d); err != nil {
		return fmt.Errorf("dashboard: rendering %s: %w", name, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Type("html", "utf-8")
	return c.Send(b.Bytes())
}

// page serves a page that needs a session.
func (s *Server) page(name string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		sess := sessionOf(c)
		return s.render(c, name, pageData{Title: pageTitles[name], Customer: sess.Customer, Login: sess.Login, CSRF: sess.CSRF,
			RefreshMS: s.cfg.RefreshInterval.Milliseconds(), WidgetURL: s.cfg.WidgetBaseURL})
	}
}

var pageTitles = map[string]string{"overview": "Overview", "influencers": "Influencers & widgets"}

func (s *Server) asset(c *fiber.Ctx) error {
	name := c.Params("file")
	b, err := assetFS.ReadFile(path.Join("assets", path.Clean("/" + name)[1:]))
	if err != nil {
		return &apiError{Status: fiber.StatusNotFound, Msg: "no such asset"}
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		c.Set(fiber.HeaderContentType, t)
	}
	if c.Query("v") == assetVersion {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache")
	}
	return c.Send(b)
}
