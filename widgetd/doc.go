// Package widgetd serves the streamers' OBS widgets: the widget page (HTML,
// CSS and JavaScript embedded in the binary, no CDN) and a websocket that
// pushes a snapshot and then every change of an influencer's (or one of its
// campaigns') live counts.
//
// widgetd owns no state of its own. At start it reads the changelog of the
// stats table that the processors write (schemas.Names.StatsTable: one
// schemas.Stats row per customer/product/influencer/campaign/day, keyed by
// schemas.DayKey; a nil value deletes a row) from the beginning, with
// franz-go and without a consumer group, so that every instance holds every
// row and instances scale out behind any load balancer. It sums the day rows
// per influencer and per campaign as it reads them (see aggregate.go): a
// widget shows the total of its event types' counted events over all of the
// rows of its influencer or campaign (messages carry nothing else of the
// rows: widget URLs are public; see Message). It serves
// snapshots only once it has caught up with the end offsets it saw at start
// (see /readyz). Values in the changelog are absolute (an updated row
// replaces its previous counts in the sums), so replays, restarts and
// duplicates never move a counter.
//
// Widget settings (title, counted event types, goal) come from the
// customer's product in the tenant registry; URL parameters override them
// (see Settings). widgetd does not authenticate viewers: a widget URL is
// public by design (streamers paste it into OBS).
package widgetd
