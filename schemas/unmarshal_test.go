package schemas

import "testing"

// TestUnmarshalRefusesWhatGoJSONWouldMisread: the inputs that skip the
// encoding/json check cannot hold what go-json misreads; those that can
// are refused.
func TestUnmarshalRefusesWhatGoJSONWouldMisread(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"v":1,"id":"a"}`, true},
		{`{"v":1,"id":"\u00e9"}`, true},
		{"{\"v\":1}\x00garbage", false}, // go-json alone stops at the NUL
		{`{"v\x":1}`, false},            // an unknown escape in a key
		{`{"v":1`, false},
	} {
		var pb Postback
		if err := Unmarshal([]byte(tc.in), &pb); (err == nil) != tc.ok {
			t.Errorf("Unmarshal(%q): err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
