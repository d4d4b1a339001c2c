package widgetd

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPreviewNoData: a preview widget (?preview=1) whose ids match no stats
// row (a typo'd campaign, a wrong-case influencer) is told no_data, so that
// the page can say so; once a row arrives the update drops it. A widget on
// stream is never told.
func TestPreviewNoData(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	sys.putDay(row("default", "product", "influ_test", "Jan2024", day1), map[string]int64{"reg": 2}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")

	for _, tc := range []struct {
		path   string
		noData bool
	}{
		{"/ws/default/product/Influ_Test?preview=1", true},
		{"/ws/default/product/influ_test/jan2024?preview=1", true},
		{"/ws/default/product/influ_test/Jan2024?preview=1", false},
		{"/ws/default/product/influ_test?preview=1", false},
		{"/ws/default/product/Influ_Test", false},
		{"/ws/default/product/influ_test/jan2024", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			c := dialWS(t, srv, tc.path)
			if m := c.next(false); m.Type != "snapshot" || m.NoData != tc.noData {
				t.Errorf("snapshot %+v: want no_data %v", m.Message, tc.noData)
			}
			resp, err := http.Get("http://" + srv.Addr() + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			checkPublic(t, b, c.preview)
			if got := strings.Contains(string(b), `"no_data":true`); got != tc.noData {
				t.Errorf("plain GET %s: want no_data %v", b, tc.noData)
			}
		})
	}

	// Same widget on stream and in preview: the first row reaches both,
	// and the preview's hint goes.
	preview := dialWS(t, srv, "/ws/default/product/Influ_Test?preview=1")
	stream := dialWS(t, srv, "/ws/default/product/Influ_Test")
	if m := preview.next(false); !m.NoData {
		t.Fatalf("preview snapshot %+v: want no_data", m.Message)
	}
	stream.next(false)
	sys.putDay(row("default", "product", "Influ_Test", "", day1), map[string]int64{"reg": 1}, 0)
	if m := preview.until("the first row", func(m wireMsg) bool { return m.Total == 1 }); m.Type != "update" || m.NoData {
		t.Errorf("preview update %+v: want total 1 without no_data", m.Message)
	}
	if m := stream.until("the first row", func(m wireMsg) bool { return m.Total == 1 }); m.Type != "update" || m.NoData {
		t.Errorf("stream update %+v: want total 1", m.Message)
	}
}
