package dashboard

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// widgetInfo is what the influencers page says beside a product's widget
// preview, so that the dashboard and the widget agree visibly: the table
// counts every event type, the widget only those its product names.
type widgetInfo struct {
	Product string `json:"product"`
	Title   string `json:"title"`
	Goal    int64  `json:"goal"`
	// EventTypes the widget counts; empty: every type.
	EventTypes []string `json:"event_types"`
	// Uncounted are the event types of the product's data that the widget
	// does not count.
	Uncounted []string `json:"uncounted_event_types"`
	// Note says it in a sentence; empty when the widget counts every type.
	Note string `json:"note"`
}

// widgetNote is the sentence beside a preview: "The widget counts reg and
// dep, not download." Nothing when the widget counts every type.
func widgetNote(counted, uncounted []string) string {
	if len(counted) == 0 {
		return ""
	}
	note := "The widget counts " + humanList(counted, "and")
	if len(uncounted) > 0 {
		note += ", not " + humanList(uncounted, "or")
	}
	return note + "."
}

// humanList joins "a", "a and b", "a, b and c".
func humanList(items []string, conj string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

// widgetsAPI answers GET /api/v1/widgets: {"known": bool, "products":
// [widgetInfo...]} for the session's customer. known is false when the
// server has no Config.Products, or the customer is not known there yet.
func (s *Server) widgetsAPI(c *fiber.Ctx) error {
	customer := sessionOf(c).Customer
	out := fiber.Map{"known": false, "products": []widgetInfo{}}
	if s.cfg.Products == nil {
		return c.JSON(out)
	}
	products, ok := s.cfg.Products(customer)
	if !ok {
		return c.JSON(out)
	}
	ctx, cancel := s.queryCtx(c)
	defer cancel()
	seen, err := s.eventTypes(ctx, customer)
	if err != nil {
		return err
	}
	infos := []widgetInfo{}
	for _, code := range slices.Sorted(maps.Keys(products)) {
		p := products[code]
		info := widgetInfo{Product: code, Title: p.Title, Goal: p.Goal, EventTypes: p.EventTypes, Uncounted: []string{}}
		if info.EventTypes == nil {
			info.EventTypes = []string{}
		}
		if len(p.EventTypes) > 0 {
			for _, et := range seen[code] {
				if !slices.Contains(p.EventTypes, et) {
					info.Uncounted = append(info.Uncounted, et)
				}
			}
		}
		info.Note = widgetNote(info.EventTypes, info.Uncounted)
		infos = append(infos, info)
	}
	out["known"], out["products"] = true, infos
	return c.JSON(out)
}

// eventTypes returns the event types of each product in the customer's
// data, sorted (at most maxOptions in all).
func (s *Server) eventTypes(ctx context.Context, customer string) (map[string][]string, error) {
	q := newQuery(customer)
	rows, err := s.db.Query(ctx, `SELECT product, event_type FROM daily_stats`+q.String()+
		` GROUP BY product, event_type ORDER BY product, event_type LIMIT `+q.arg(maxOptions), q.args...)
	if err != nil {
		return nil, fmt.Errorf("reading event types: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var p, et string
		if err := rows.Scan(&p, &et); err != nil {
			return nil, fmt.Errorf("reading event types: %w", err)
		}
		out[p] = append(out[p], et)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading event types: %w", err)
	}
	return out, nil
}
