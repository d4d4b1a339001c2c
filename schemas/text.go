package schemas

import "unicode"

// IsControl reports the C0 controls, DEL and the C1 controls (U+0080 to
// U+009F): they break log lines, CSV exports and terminals. No id or label
// may hold one (the edge refuses them; widgetd refuses them in URLs).
func IsControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// IsBidiControl reports the Unicode bidirectional formatting characters
// (the Bidi_Control property: U+061C, U+200E, U+200F, U+202A to U+202E,
// U+2066 to U+2069). They reorder the display of the text around them, so
// an id holding one can read as another id in the dashboard or a widget URL
// ("Trojan Source", CVE-2021-42574). All are above U+0600: ASCII and Latin
// text costs one comparison per character.
func IsBidiControl(r rune) bool { return r >= 0x061c && unicode.Is(unicode.Bidi_Control, r) }
