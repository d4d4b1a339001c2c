package schemas

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzKeys: every key function's key splits back into its parts, whatever
// bytes the ids hold; claim keys are recognised as claims and row keys are
// not; AppendPostbackKey writes exactly PostbackKey.
func FuzzKeys(f *testing.F) {
	f.Add("default", "product", "influ_test", "Jan2024_special_event", "2026-03-01", "tx-1", true)
	f.Add("café", "p/roduct", "in flu", "100%", "2026-03-01", "", false)
	f.Add("#visitor", "%2F", "..", "", "", "a/b c", true)
	f.Add("a\xffb", "\x00", "é🎮", "%zz", "+", "~-._", false)
	f.Fuzz(func(t *testing.T, customer, product, influencer, campaign, day, extra string, antiCheat bool) {
		check := func(name, key string, want ...string) {
			t.Helper()
			parts, err := SplitKey(key)
			if err != nil {
				t.Fatalf("%s %q of %q: SplitKey: %v", name, key, want, err)
			}
			if !slices.Equal(parts, want) {
				t.Fatalf("%s %q of %q splits to %q", name, key, want, parts)
			}
			if ClaimOfKey(key) != 0 {
				t.Fatalf("%s %q of %q reads as a claim key", name, key, want)
			}
		}
		check("InfluencerKey", InfluencerKey(customer, product, influencer), customer, product, influencer)
		check("CampaignKey", CampaignKey(customer, product, influencer, campaign), customer, product, influencer, campaign)
		check("DayKey", DayKey(customer, product, influencer, campaign, day), customer, product, influencer, campaign, day)

		claim := func(name, key, prefix string, c Claims, want ...string) {
			t.Helper()
			if ClaimOfKey(key) != c {
				t.Fatalf("%s %q: ClaimOfKey = %v, want %v", name, key, ClaimOfKey(key), c)
			}
			rest, ok := strings.CutPrefix(key, prefix)
			if !ok {
				t.Fatalf("%s %q lacks the prefix %q", name, key, prefix)
			}
			parts, err := SplitKey(rest)
			if err != nil || !slices.Equal(parts, want) {
				t.Fatalf("%s %q of %q splits to %q, %v", name, key, want, parts, err)
			}
		}
		claim("VisitorClaimKey", VisitorClaimKey(customer, product, influencer, day, extra), claimPrefixVisitor, ClaimVisitor,
			customer, product, influencer, day, extra)
		claim("EventIDClaimKey", EventIDClaimKey(customer, extra), claimPrefixEventID, ClaimEventID, customer, extra)

		pb := Postback{V: 1, ID: "x", ReceivedAt: time.Unix(1, 0).UTC(), CustomerCode: customer, Day: day, AntiCheat: antiCheat,
			Attrs: Attrs{InfluencerID: influencer, Product: product, Campaign: campaign, EventType: campaign, EventID: extra}, Visitor: extra}
		key := PostbackKey(&pb)
		if got := string(AppendPostbackKey([]byte("k:"), &pb)); got != "k:"+key {
			t.Fatalf("AppendPostbackKey = %q, PostbackKey = %q", got, key)
		}
		if ClaimOfKey(key) != NextClaim(WantedClaims(&pb), 0) {
			t.Fatalf("PostbackKey %q: ClaimOfKey = %v, first claim %v", key, ClaimOfKey(key), NextClaim(WantedClaims(&pb), 0))
		}
	})
}

// FuzzSplitKey: whatever key SplitKey accepts (keys come from records any
// producer may write) has as many parts as '/'-separated segments, and
// re-joining its parts makes a canonical key that splits to the same parts
// and is its own canonical form.
func FuzzSplitKey(f *testing.F) {
	for _, s := range []string{
		"default/product/influ_test/Jan2024_special_event/2026-03-01", "caf%C3%A9/p%2Froduct/in%20flu/100%25/2026-03-01",
		"a/b/c", "", "/", "a//b", "%", "%zz/a", "%FF/%00", "a+b/c%2Bd", "#visitor/c/p/e/d/v", "%61/%2f/%2F",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		parts, err := SplitKey(key)
		if err != nil {
			return
		}
		if len(parts) != strings.Count(key, "/")+1 {
			t.Fatalf("SplitKey(%q) = %q: %d parts for %d segments", key, parts, len(parts), strings.Count(key, "/")+1)
		}
		canon := joinKey(slices.Clone(parts)...)
		again, err := SplitKey(canon)
		if err != nil || !slices.Equal(again, parts) {
			t.Fatalf("SplitKey(%q) = %q, re-joined %q splits to %q, %v", key, parts, canon, again, err)
		}
		if c2 := joinKey(slices.Clone(again)...); c2 != canon {
			t.Fatalf("canonical key of %q is not stable: %q, then %q", key, canon, c2)
		}
		if len(parts) == 5 {
			if dk := DayKey(parts[0], parts[1], parts[2], parts[3], parts[4]); dk != canon {
				t.Fatalf("DayKey of %q = %q, want %q", parts, dk, canon)
			}
		}
		for _, p := range parts {
			if url.PathEscape(p) != fuzzAppendEscaped(p) {
				t.Fatalf("appendEscaped(%q) = %q, url.PathEscape %q", p, fuzzAppendEscaped(p), url.PathEscape(p))
			}
		}
	})
}

func fuzzAppendEscaped(s string) string { return string(appendEscaped(nil, s)) }
