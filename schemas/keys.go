package schemas

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Message keys join path-escaped parts with '/', so ids that contain '/',
// spaces or unicode still make unambiguous keys.
func joinKey(parts ...string) string {
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// SplitKey reverses the key functions below.
func SplitKey(key string) ([]string, error) {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("schemas: splitting key %q: %w", key, err)
		}
		parts[i] = u
	}
	return parts, nil
}

// InfluencerKey is the key of postbacks, events and influencer stats rows.
func InfluencerKey(customer, product, influencer string) string {
	return joinKey(customer, product, influencer)
}

// CampaignKey is the key of campaign stats rows; campaign is "" when absent.
func CampaignKey(customer, product, influencer, campaign string) string {
	return joinKey(customer, product, influencer, campaign)
}

// DayKey is the key of daily stats rows.
func DayKey(customer, product, influencer, campaign, day string) string {
	return joinKey(customer, product, influencer, campaign, day)
}

// DayLayout is the layout of every Day field.
const DayLayout = "2006-01-02"

// DayOf returns the calendar day of t in loc, the "same day" of anti-cheat
// and daily stats.
func DayOf(t time.Time, loc *time.Location) string { return t.In(loc).Format(DayLayout) }
