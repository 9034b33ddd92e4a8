package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestDocLinks: every relative link of the repository's Markdown (README.md
// and the other top-level documents, docs/, deploy/) points at a file or
// directory of the repository, and a #fragment at a heading of its file,
// spelt as GitHub spells heading anchors.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	var docs []string
	for _, pattern := range []string{"*.md", "docs/*.md", "deploy/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, m...)
	}
	if len(docs) < 3 {
		t.Fatalf("Markdown files found: %v", docs)
	}
	for _, doc := range docs {
		for _, l := range docLinks(t, doc) {
			if err := checkLink(root, doc, l.target); err != nil {
				t.Errorf("%s:%d: [%s](%s): %v", doc, l.line, l.text, l.target, err)
			}
		}
	}
}

// TestDocLinksCatchBreakage: the checker refuses what it must.
func TestDocLinksCatchBreakage(t *testing.T) {
	root := filepath.Join("..", "..")
	readme := filepath.Join(root, "README.md")
	for _, target := range []string{"docs/nowhere.md", "#no-such-heading", "docs/api.md#no-such-heading", "../outside.md"} {
		if checkLink(root, readme, target) == nil {
			t.Errorf("link %q accepted", target)
		}
	}
	for _, target := range []string{"#the-two-commands", "docs/api.md#limits", "deploy/", "LICENSE", "https://example.com/x.md"} {
		if err := checkLink(root, readme, target); err != nil {
			t.Errorf("link %q refused: %v", target, err)
		}
	}
}

type docLink struct {
	line         int
	text, target string
}

var linkRE = regexp.MustCompile(`\[([^\]]*)\]\(([^)\s]+)\)`)

// docLinks returns the links of a Markdown file outside fenced code blocks.
func docLinks(t *testing.T, path string) []docLink {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var links []docLink
	fenced := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			links = append(links, docLink{i + 1, m[1], m[2]})
		}
	}
	return links
}

// checkLink resolves target as a link of the file from; links with a scheme
// are not checked.
func checkLink(root, from, target string) error {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return nil
	}
	path, fragment, _ := strings.Cut(target, "#")
	file := from
	if path != "" {
		file = filepath.Join(filepath.Dir(from), path)
		rel, err := filepath.Rel(root, file)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("outside the repository")
		}
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("no such file")
		}
	}
	if fragment == "" {
		return nil
	}
	if !strings.HasSuffix(file, ".md") {
		return fmt.Errorf("an anchor in a file that is not Markdown")
	}
	anchors, err := headingAnchors(file)
	if err != nil {
		return err
	}
	if !anchors[fragment] {
		return fmt.Errorf("no heading with anchor #%s in %s", fragment, file)
	}
	return nil
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation dropped, spaces as dashes, a
// repeated anchor suffixed -1, -2, ...
func headingAnchors(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	anchors, seen := map[string]bool{}, map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				slug.WriteRune(r)
			}
		}
		a := slug.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		anchors[a] = true
	}
	return anchors, nil
}
