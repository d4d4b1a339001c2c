package schemas

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the prefix of every topic and group name unless configured.
const DefaultPrefix = "streamtools."

// DefaultPartitions is the partition count of the topics StreamTools creates.
// It bounds how many processor instances can share the work. Never change the
// partition count of an existing postbacks topic: keys would move partitions
// and the per-key ordering the processors rely on would break.
const DefaultPartitions = 6

// Names derives every topic and group name from a prefix and a processing
// generation. The zero value is not usable; call NewNames.
//
// Generation selects the processor groups (and so their tables). Bumping it
// starts fresh groups that rebuild every table from the start of the
// postbacks topic; see docs/operations.md, "Processor generations".
type Names struct {
	// Prefix is prepended to every name, e.g. "streamtools.". Tests use a
	// unique prefix so that they never share topics.
	Prefix string
	// Generation is the processor generation, 1 or more.
	Generation int
}

// NewNames returns the names for prefix and generation 1.
func NewNames(prefix string) Names { return Names{Prefix: prefix, Generation: 1} }

// Validate reports a naming problem, naming the field and the fix.
func (n Names) Validate() error {
	if n.Generation < 1 {
		return fmt.Errorf("schemas: Generation is %d: set it to 1 or more", n.Generation)
	}
	if strings.ContainsAny(n.Prefix, " /\\") {
		return fmt.Errorf("schemas: Prefix %q contains a space or slash: use letters, digits, '.', '_' or '-'", n.Prefix)
	}
	return nil
}

// Postbacks is the topic the edge writes accepted postbacks to (Postback
// records, keyed by InfluencerKey, partitioned like sarama).
func (n Names) Postbacks() string { return n.Prefix + "postbacks" }

// Events is the topic the verdicts processor writes every postback to, with
// its verdict (Event records, keyed by DayKey); the stats processor counts
// it. Each processor generation writes its own: generation 1 uses the plain
// name, later ones add ".g<N>", so a replay never mixes old and new verdicts.
func (n Names) Events() string { return n.Prefix + "events" + n.genSuffix() }

// Claims is the processors' internal topic of ClaimRequest records, keyed
// by claim key: postbacks on their way to their next claim.
func (n Names) Claims() string { return n.Prefix + "claims" + n.genSuffix() }

// ClaimsTable is the changelog of the claims group's table (ClaimRow
// records keyed by claim key): the log of claim decisions.
func (n Names) ClaimsTable() string { return tableTopic(n.Group(GroupClaims)) }

// StatsTable is the changelog of the stats group's table (Stats records
// keyed by DayKey), which the sink, replay and widgetd read. It is the one
// place the stats topic's name is made: every reader calls it.
func (n Names) StatsTable() string { return tableTopic(n.Group(GroupStats)) }

func (n Names) genSuffix() string {
	if n.Generation <= 1 {
		return ""
	}
	return fmt.Sprintf(".g%d", n.Generation)
}

// DeadLetter receives records a processor could not handle, with the reason
// (DeadLetter records).
func (n Names) DeadLetter() string { return n.Prefix + "deadletter" }

// Customers is the compacted topic of tenant settings (Customer records keyed
// by customer code).
func (n Names) Customers() string { return n.Prefix + "customers" }

// AccessKeys is the compacted topic of postback access keys (AccessKey
// records keyed by the key's hash; the key itself is never stored).
func (n Names) AccessKeys() string { return n.Prefix + "access-keys" }

// Salts is the compacted topic of the daily visitor-fingerprint salts (Salt
// records keyed by day). Salts of past days are deleted with tombstones.
func (n Names) Salts() string { return n.Prefix + "salts" }

// Group returns the name of a processor group of this generation, e.g.
// "streamtools.claims.g1".
func (n Names) Group(name string) string {
	return fmt.Sprintf("%s%s.g%d", n.Prefix, name, n.Generation)
}

// tableTopic returns the changelog topic goka keeps for a group's table. It
// follows goka's own convention (goka.GroupTable: group name + "-table");
// TestTableTopicsAreGokas checks that it still does.
func tableTopic(group string) string { return group + "-table" }

// Processor group base names; pass them to Names.Group.
const (
	// GroupClaims decides claims (anti-cheat and event ids).
	GroupClaims = "claims"
	// GroupVerdicts routes postbacks to their claims and emits verdicts.
	GroupVerdicts = "verdicts"
	// GroupStats keeps the absolute counts per day row.
	GroupStats = "stats"
)
