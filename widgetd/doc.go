// Package widgetd serves the streamers' OBS widgets: the widget page (HTML,
// CSS and JavaScript embedded in the binary, no CDN) and a websocket that
// pushes a snapshot and then every change of an influencer's (or one of its
// campaigns') live counts.
//
// widgetd owns no state of its own. At start it reads the stats table
// changelogs that the processors write (schemas.GroupStatsInfluencer and
// schemas.GroupStatsCampaign) from the beginning, with franz-go and without a
// consumer group, so that every instance holds every row and instances scale
// out behind any load balancer. It serves snapshots only once it has caught up
// with the end offsets it saw at start (see /readyz). Values in the changelog
// are absolute, so replays, restarts and duplicates never move a counter.
//
// Widget settings (title, counted event types, goal) come from the
// customer's product in the tenant registry; URL parameters override them
// (see Settings). widgetd does not authenticate viewers: a widget URL is
// public by design, like the seed document's.
package widgetd
