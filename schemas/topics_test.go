package schemas

import (
	"testing"

	"github.com/lovoo/goka"
)

// TestTableTopicsAreGokas: the table topics named here are the ones goka
// creates and writes for the groups, in every generation, so that the sink,
// replay and widgetd read what the processors write.
func TestTableTopicsAreGokas(t *testing.T) {
	for _, n := range []Names{NewNames(DefaultPrefix), {Prefix: "test-x.", Generation: 3}} {
		for _, c := range []struct {
			group, got string
		}{
			{GroupClaims, n.ClaimsTable()},
			{GroupStats, n.StatsTable()},
		} {
			if want := string(goka.GroupTable(goka.Group(n.Group(c.group)))); c.got != want {
				t.Errorf("%+v: table topic of %s is %q, goka writes %q", n, c.group, c.got, want)
			}
		}
	}
}
