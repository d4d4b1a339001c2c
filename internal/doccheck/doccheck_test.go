package doccheck

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// docFiles lists the documentation the doc tests cover: README.md and
// docs/*.md, relative to root.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	md, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, f := range md {
		files = append(files, filepath.ToSlash(strings.TrimPrefix(f, root+string(filepath.Separator))))
	}
	return files
}

// TestDocLinks: every relative link and #anchor of README.md and docs/*.md
// resolves.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	files := docFiles(t, root)
	if len(files) < 2 {
		t.Fatalf("found only %v", files)
	}
	checked, err := CheckLinks(root, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d relative links in %d files resolve", len(checked), len(files))
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Try it", "try-it"},
		{"`POST /{access_key}`", "post-access_key"},
		{"Read-only access: `streamtools_reader`", "read-only-access-streamtools_reader"},
		{"Logins: `streamtools dashboard users …`", "logins-streamtools-dashboard-users-"},
		{"The brands' dashboard", "the-brands-dashboard"},
		{"Tests (`go test ./processors/...`)", "tests-go-test-processors"},
		{"The edge (`streamtools bench ingest`)", "the-edge-streamtools-bench-ingest"},
		{"See [the edge](edge.md) — now", "see-the-edge--now"},
		{"Überblick 2", "überblick-2"},
	} {
		t.Run(tc.heading, func(t *testing.T) {
			if got := Slug(tc.heading); got != tc.want {
				t.Errorf("Slug(%q) = %q, want %q", tc.heading, got, tc.want)
			}
		})
	}
}

func TestParseText(t *testing.T) {
	const text = "# Title\n\n## Title\n\n<!-- not run: starts a server -->\n\n```sh\nstreamtools dev\n```\n\n" +
		"- item:\n\n  <!-- retried: asynchronous -->\n  ```bash\n  # a comment\n  curl -s x   # not output\n  #  out 1\n  # out ...\n  ```\n\n" +
		"See [the title](#title-1), ![img](docs/a.png), `[code](not-a-link)` and <img src=\"b.png\">.\n\n" +
		"~~~json\n{}\n~~~\n"
	d, err := ParseText("x.md", text)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Anchors["title"] || !d.Anchors["title-1"] {
		t.Errorf("anchors %v, want title and title-1", d.Anchors)
	}
	if len(d.Blocks) != 3 {
		t.Fatalf("blocks %+v, want 3", d.Blocks)
	}
	b0, b1, b2 := d.Blocks[0], d.Blocks[1], d.Blocks[2]
	if b0.Marker != NotRun || b0.Reason != "starts a server" || !b0.Shell() || b0.Line != 7 {
		t.Errorf("block 0: %+v", b0)
	}
	if b1.Marker != Retried || b1.Lang != "bash" || b1.Text != "# a comment\ncurl -s x   # not output\n#  out 1\n# out ..." {
		t.Errorf("block 1: %+v", b1)
	}
	if got, want := b1.Expected(), []string{" out 1", "out ..."}; !reflect.DeepEqual(got, want) {
		t.Errorf("expected output %q, want %q", got, want)
	}
	if b2.Lang != "json" || b2.Shell() || b2.Marker != "" {
		t.Errorf("block 2: %+v", b2)
	}
	var targets []string
	for _, l := range d.Links {
		targets = append(targets, l.Target)
	}
	if want := []string{"#title-1", "docs/a.png", "b.png"}; !reflect.DeepEqual(targets, want) {
		t.Errorf("links %q, want %q", targets, want)
	}
}

func TestParseTextErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"marker without block", "<!-- not run: x -->\nsome text\n", "not followed by a code block"},
		{"marker at the end", "<!-- retried: x -->\n", "not followed by a code block"},
		{"misspelt marker", "<!-- dont run: x -->\n```sh\nls\n```\n", "unknown marker"},
		{"unclosed fence", "```sh\nls\n", "never closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseText("x.md", tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestCheckLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n[a](docs/a.md#part) [b](docs/a.md#nope) [c](docs/missing.md) [d](#top) [e](https://x.io/y#z) [f](docs/soon.png)\n")
	write("docs/a.md", "# A\n## Part\n[up](../README.md#top) [out](../../etc/passwd)\n")
	_, err := CheckLinks(root, []string{"README.md", "docs/a.md"}, map[string]string{"docs/soon.png": "later"})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`README.md:2: link "docs/a.md#nope": docs/a.md has no heading with the anchor #nope`,
		`README.md:2: link "docs/missing.md": docs/missing.md does not exist`,
		`docs/a.md:3: link "../../etc/passwd": points outside the repository`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 3 {
		t.Errorf("%d errors, want 3:\n%s", n, msg)
	}
}
