// Package doccheck reads the repository's Markdown documentation (README.md
// and docs/*.md) the way the doc tests need it: the fenced code blocks with
// the marker comment before each, the anchors GitHub gives headings, and the
// relative links and their targets.
//
// It owns the rules of those markers and the link check (CheckLinks). It
// does not run anything: cmd/streamtools's TestDocCommands runs the blocks
// against `streamtools dev`.
package doccheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// Marker kinds: an HTML comment `<!-- kind: reason -->` on the line before a
// fenced block (blank lines between are allowed) says how the doc test
// treats the block.
const (
	// NotRun: a shell block that must not run (it starts a server, installs
	// something, runs the test suite); the reason is required.
	NotRun = "not run"
	// Retried: a shell block whose output arrives asynchronously; it is run
	// again until it succeeds and its output matches, for a bounded time.
	// Only for blocks that change nothing.
	Retried = "retried"
	// RunTwice: a shell block the text asks the reader to run twice.
	RunTwice = "run twice"
	// OutputOf: a plain block showing what a command prints; the reason is
	// the command (e.g. "streamtools dev").
	OutputOf = "output of"
)

var markerKinds = map[string]bool{NotRun: true, Retried: true, RunTwice: true, OutputOf: true}

// Block is one fenced code block.
type Block struct {
	File string // as given to Parse
	Line int    // 1-based line of the opening fence
	Lang string // the info string's first word: "sh", "json", "" ...
	// Text is the block's content, without the fences and without the
	// indentation of the opening fence (blocks inside list items).
	Text string
	// Marker and Reason come from the marker comment before the block, if
	// any: Marker is one of the kinds above.
	Marker, Reason string
}

func (b Block) String() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

// Shell reports whether the block holds commands to paste into a shell.
func (b Block) Shell() bool { return b.Lang == "sh" || b.Lang == "bash" }

// Expected returns the output a shell block shows: its comment lines after
// the first command, without the "# " prefix. Comments before the first
// command, and comments at the end of a command line, are only comments.
func (b Block) Expected() []string {
	var want []string
	seenCommand := false
	for _, line := range strings.Split(b.Text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
		case strings.HasPrefix(line, "#"):
			if seenCommand {
				want = append(want, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
			}
		default:
			seenCommand = true
		}
	}
	return want
}

// Doc is one parsed Markdown file.
type Doc struct {
	Path    string
	Blocks  []Block
	Anchors map[string]bool // GitHub's heading ids, plus explicit id= and name= attributes
	Links   []Link
}

// Link is one link or image target found outside code.
type Link struct {
	Line   int
	Target string
}

var (
	fenceRE   = regexp.MustCompile("^( *)(```+|~~~+)\\s*([^`\\s]*)")
	markerRE  = regexp.MustCompile(`^\s*<!--\s*([a-z ]+?)\s*:\s*(.*?)\s*-->\s*$`)
	headingRE = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	// [text](target "title") and ![alt](target); text may hold brackets
	// one level deep.
	mdLinkRE   = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"]*")?\s*\)`)
	htmlLinkRE = regexp.MustCompile(`\b(?:href|src)\s*=\s*"([^"]+)"`)
	htmlIDRE   = regexp.MustCompile(`\b(?:id|name)\s*=\s*"([^"]+)"`)
)

// Parse reads a Markdown file. It fails on a marker comment that is not
// followed by a fenced block, an unknown marker kind, or an unclosed fence.
func Parse(path string) (*Doc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("doccheck: reading %s: %w", path, err)
	}
	return ParseText(path, string(b))
}

// ParseText is Parse on text already read; name labels blocks and errors.
func ParseText(name, text string) (*Doc, error) {
	d := &Doc{Path: name, Anchors: map[string]bool{}}
	var errs []error
	lines := strings.Split(text, "\n")
	slugCount := map[string]int{}
	var pendingMarker, pendingReason string
	pendingLine := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			indent, fence := m[1], m[2]
			blk := Block{File: name, Line: i + 1, Lang: m[3], Marker: pendingMarker, Reason: pendingReason}
			pendingMarker, pendingReason = "", ""
			var body []string
			closed := false
			for i++; i < len(lines); i++ {
				l := lines[i]
				if t := strings.TrimLeft(l, " "); len(l)-len(t) <= len(indent)+3 &&
					strings.HasPrefix(t, fence) && strings.Trim(strings.TrimSpace(t), fence[:1]) == "" {
					closed = true
					break
				}
				body = append(body, strings.TrimPrefix(l, indent))
			}
			if !closed {
				errs = append(errs, fmt.Errorf("%s:%d: the code fence is never closed", name, blk.Line))
			}
			blk.Text = strings.Join(body, "\n")
			d.Blocks = append(d.Blocks, blk)
			continue
		}
		if m := markerRE.FindStringSubmatch(line); m != nil {
			kind := m[1]
			switch {
			case markerKinds[kind]:
				if pendingMarker != "" {
					errs = append(errs, fmt.Errorf("%s:%d: the marker %q is not followed by a code block", name, pendingLine, pendingMarker))
				}
				pendingMarker, pendingReason, pendingLine = kind, m[2], i+1
				continue
			case strings.Contains(kind, "run") || strings.Contains(kind, "output") || strings.Contains(kind, "retr"):
				// Most likely a misspelt marker: better an error than a
				// block run that was meant to be skipped.
				errs = append(errs, fmt.Errorf("%s:%d: unknown marker %q: use one of %q, %q, %q, %q",
					name, i+1, kind, NotRun, Retried, RunTwice, OutputOf))
				continue
			}
		}
		if strings.TrimSpace(line) != "" && pendingMarker != "" {
			errs = append(errs, fmt.Errorf("%s:%d: the marker %q is not followed by a code block", name, pendingLine, pendingMarker))
			pendingMarker, pendingReason = "", ""
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			s := Slug(m[2])
			if n := slugCount[s]; n > 0 {
				d.Anchors[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				d.Anchors[s] = true
			}
			slugCount[s]++
		}
		outside := stripCodeSpans(line)
		for _, m := range htmlIDRE.FindAllStringSubmatch(outside, -1) {
			d.Anchors[m[1]] = true
		}
		for _, m := range mdLinkRE.FindAllStringSubmatch(outside, -1) {
			d.Links = append(d.Links, Link{Line: i + 1, Target: m[1]})
		}
		for _, m := range htmlLinkRE.FindAllStringSubmatch(outside, -1) {
			d.Links = append(d.Links, Link{Line: i + 1, Target: m[1]})
		}
	}
	if pendingMarker != "" {
		errs = append(errs, fmt.Errorf("%s:%d: the marker %q is not followed by a code block", name, pendingLine, pendingMarker))
	}
	return d, errors.Join(errs...)
}

// stripCodeSpans removes the code spans of a line: a run of backticks up to
// the next run of the same length. (RE2 has no backreferences.)
func stripCodeSpans(line string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(line, '`')
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		b.WriteString(line[:i])
		n := i
		for n < len(line) && line[n] == '`' {
			n++
		}
		fence := line[i:n]
		end := -1
		for j := n; j < len(line); {
			k := strings.Index(line[j:], fence)
			if k < 0 {
				break
			}
			k += j
			m := k + len(fence)
			if m == len(line) || line[m] != '`' {
				end = m
				break
			}
			for m < len(line) && line[m] == '`' {
				m++
			}
			j = m
		}
		if end < 0 { // no closing run: the backticks are literal
			b.WriteString(fence)
			line = line[n:]
			continue
		}
		line = line[end:]
	}
}

var (
	mdLinkTextRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTagRE    = regexp.MustCompile(`<[^>]+>`)
)

// Slug is the anchor GitHub gives a heading: the text as rendered, lower
// case, without punctuation but '-' and '_', spaces turned into '-'. (A
// repeated heading gets -1, -2, ...: Parse adds those.)
func Slug(heading string) string {
	s := mdLinkTextRE.ReplaceAllString(heading, "$1")
	s = htmlTagRE.ReplaceAllString(s, "")
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CheckLinks checks every relative link of the given Markdown files (paths
// relative to root): its file or directory exists, and its #anchor, when it
// points into a Markdown file, is a heading or id there. Links with a scheme
// (https:, mailto:) are not followed. Targets listed in awaited may be
// missing (files another branch adds); the returned errors name the file and
// line of every broken link.
func CheckLinks(root string, files []string, awaited map[string]string) ([]Link, error) {
	docs := map[string]*Doc{}
	load := func(rel string) (*Doc, error) {
		if d, ok := docs[rel]; ok {
			return d, nil
		}
		d, err := Parse(filepath.Join(root, rel))
		docs[rel] = d
		return d, err
	}
	var errs []error
	var checked []Link
	for _, f := range files {
		d, err := load(f)
		if err != nil {
			errs = append(errs, err)
			if d == nil {
				continue
			}
		}
		for _, l := range d.Links {
			if strings.Contains(l.Target, "://") || strings.HasPrefix(l.Target, "mailto:") {
				continue
			}
			checked = append(checked, l)
			where := fmt.Sprintf("%s:%d: link %q", f, l.Line, l.Target)
			path, anchor, _ := strings.Cut(l.Target, "#")
			target := f
			if path != "" {
				if strings.HasPrefix(path, "/") {
					errs = append(errs, fmt.Errorf("%s: use a path relative to %s, not from the root", where, f))
					continue
				}
				target = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(f), path)))
				if strings.HasPrefix(target, "../") {
					errs = append(errs, fmt.Errorf("%s: points outside the repository", where))
					continue
				}
				if _, err := os.Stat(filepath.Join(root, target)); err != nil {
					if _, ok := awaited[target]; ok {
						continue
					}
					errs = append(errs, fmt.Errorf("%s: %s does not exist", where, target))
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(target, ".md") {
				continue
			}
			td, err := load(target)
			if td == nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				continue
			}
			if !td.Anchors[anchor] {
				errs = append(errs, fmt.Errorf("%s: %s has no heading with the anchor #%s", where, target, anchor))
			}
		}
	}
	return checked, errors.Join(errs...)
}
