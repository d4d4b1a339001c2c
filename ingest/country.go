package ingest

import "strings"

// isoCountries lists the 249 officially assigned ISO 3166-1 alpha-2 codes
// (ISO 3166 Maintenance Agency; the same list as the tz database's
// iso3166.tab and Debian's iso-codes). User-assigned codes (AA, QM to QZ,
// XA to XZ, ZZ, including XK, which some use for Kosovo), exceptionally
// reserved ones (UK, EU, ...) and withdrawn ones (AN, YU, ...) are not in
// it. TestCountryTable checks the count and the order.
const isoCountries = "" +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE " +
	"BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD " +
	"CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM " +
	"DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF " +
	"GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU " +
	"ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN " +
	"KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME " +
	"MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA " +
	"NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM " +
	"PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI " +
	"SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK " +
	"TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI " +
	"VN VU WF WS YE YT ZA ZM ZW"

// assignedCountry holds isoCountries by index (first letter)*26 + second.
var assignedCountry = func() (t [26 * 26]bool) {
	for _, c := range strings.Fields(isoCountries) {
		t[int(c[0]-'A')*26+int(c[1]-'A')] = true
	}
	return t
}()

// countryCode returns c upper-cased when it is an officially assigned
// ISO 3166-1 alpha-2 code, in either case.
func countryCode(c string) (string, bool) {
	if len(c) != 2 || !isLetter(c[0]) || !isLetter(c[1]) {
		return "", false
	}
	a, b := c[0]&^0x20, c[1]&^0x20 // upper case
	if !assignedCountry[int(a-'A')*26+int(b-'A')] {
		return "", false
	}
	if a == c[0] && b == c[1] {
		return c, true // no copy for the usual upper-case code
	}
	return string([]byte{a, b}), true
}
