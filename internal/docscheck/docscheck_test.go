package docscheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository's top directory.
var root = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// markdownFiles are the documents whose links are checked.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob(filepath.Join(root, "examples", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	return append(files, filepath.Join(root, "README.md"))
}

var (
	// [text](target) and [text](target "title"); images too.
	linkRE = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// fenced code blocks are not links.
	fenceRE   = regexp.MustCompile("(?ms)^```.*?^```")
	inlineRE  = regexp.MustCompile("`[^`\n]*`")
	headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
)

// slug is the anchor GitHub gives a heading.
func slug(heading string) string {
	heading = strings.ToLower(inlineRE.ReplaceAllStringFunc(heading, func(s string) string { return strings.Trim(s, "`") }))
	var b strings.Builder
	for _, r := range heading {
		switch {
		case r == ' ' || r == '-':
			b.WriteRune('-')
		case r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the heading anchors of a markdown file.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := fenceRE.ReplaceAllString(string(b), "")
	out := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(text, -1) {
		s := slug(m[1])
		for i := 0; out[s]; i++ { // GitHub numbers repeated headings
			s = fmt.Sprintf("%s-%d", slug(m[1]), i+1)
		}
		out[s] = true
	}
	return out
}

// links returns the link targets of a markdown file, outside code.
func links(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := fenceRE.ReplaceAllString(string(b), "")
	text = inlineRE.ReplaceAllString(text, "")
	var out []string
	for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// brokenLinks returns the relative links of path that do not resolve.
func brokenLinks(t *testing.T, path string) []string {
	t.Helper()
	var bad []string
	for _, target := range links(t, path) {
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		file, anchor, _ := strings.Cut(target, "#")
		dest := path
		if file != "" {
			dest = filepath.Join(filepath.Dir(path), filepath.FromSlash(file))
			if _, err := os.Stat(dest); err != nil {
				bad = append(bad, target+": no such file")
				continue
			}
		}
		if anchor != "" && strings.HasSuffix(dest, ".md") && !anchors(t, dest)[anchor] {
			bad = append(bad, target+": no such heading")
		}
	}
	return bad
}

// TestLinksResolve: every relative link of README.md, docs/*.md and the
// examples' READMEs names a file that exists, and every #anchor a heading.
func TestLinksResolve(t *testing.T) {
	n := 0
	for _, path := range markdownFiles(t) {
		n += len(links(t, path))
		rel, _ := filepath.Rel(root, path)
		for _, b := range brokenLinks(t, path) {
			t.Errorf("%s: broken link %s", rel, b)
		}
	}
	if n < 20 {
		t.Fatalf("only %d links found: the link pattern is broken", n)
	}
}

// The checker must catch a missing file and a missing heading.
func TestLinksNegativeControl(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "a.md")
	body := "# Title here\n\n[ok](a.md#title-here) [self](#title-here) [gone](missing.md) [bad](#nope)\n" +
		"```\n[in code](also-missing.md)\n```\n"
	if err := os.WriteFile(doc, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got := brokenLinks(t, doc)
	want := []string{"missing.md: no such file", "#nope: no such heading"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("broken links = %q, want %q", got, want)
	}
}

var (
	testNameRE = regexp.MustCompile("`(Test[A-Za-z0-9_]+)`")
	goLinkRE   = regexp.MustCompile(`\]\(\.\./([^)#\s]+\.go)\)`)
)

// TestGuaranteesNameRealTests: every test docs/guarantees.md names is a
// func in one of the Go files its paragraph links.
func TestGuaranteesNameRealTests(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "guarantees.md"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, para := range strings.Split(string(b), "\n\n") {
		names := testNameRE.FindAllStringSubmatch(para, -1)
		if len(names) == 0 {
			continue
		}
		var sources []string
		for _, m := range goLinkRE.FindAllStringSubmatch(para, -1) {
			src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(m[1])))
			if err != nil {
				t.Errorf("guarantees.md links %s: %v", m[1], err)
				continue
			}
			sources = append(sources, string(src))
		}
		for _, m := range names {
			found := false
			for _, src := range sources {
				if strings.Contains(src, "func "+m[1]+"(") {
					found = true
				}
			}
			if !found {
				t.Errorf("guarantees.md names %s, which is not a func in the files its paragraph links", m[1])
			}
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("only %d test names checked", checked)
	}
}

// urlRE matches a web address: a document another project publishes is
// fine to cite.
var urlRE = regexp.MustCompile(`[a-z]+://[^\s)>\]]+`)

// outsideRE matches citations of documents that are not in the repository.
var outsideRE = regexp.MustCompile(`PROTOCOL\.md|DESIGN\.md|DESIGN §|\.\./shared|[Ii]nvariants? [0-9]|seed's|seed-style|\bseed (backend|client|library|form|document)|\bthe seed\b`)

// TestNoCitationsOfOutsideDocuments: code comments, help texts and docs cite
// docs/protocol.md and docs/guarantees.md, never a document users do not
// have. Test files may keep such words in their names.
func TestNoCitationsOfOutsideDocuments(t *testing.T) {
	out, err := exec.Command("git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path := sc.Text()
		if strings.HasSuffix(path, "_test.go") || strings.Contains(path, "testdata/") ||
			!(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md") || strings.HasSuffix(path, ".yaml")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, path))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		for i, line := range strings.Split(string(b), "\n") {
			if outsideRE.MatchString(urlRE.ReplaceAllString(line, "")) {
				t.Errorf("%s:%d cites a document outside the repository: %s", path, i+1, strings.TrimSpace(line))
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d files read", n)
	}
}

// TestLargeFileCheck: scripts/check-large-files, which scripts/test runs
// first, fails on a tracked file over 1 MB outside testdata/ and passes
// without one.
func TestLargeFileCheck(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	script, err := os.ReadFile(filepath.Join(root, "scripts", "check-large-files"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "check-large-files"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	if err := os.MkdirAll(filepath.Join(dir, "pkg", "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"pkg/testdata/corpus.bin", "small.txt"} {
		data := big
		if f == "small.txt" {
			data = []byte("small")
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := run("git", "init", "-q"); err != nil {
		t.Skipf("git init: %v %s", err, out)
	}
	if out, err := run("git", "add", "."); err != nil {
		t.Fatalf("git add: %v %s", err, out)
	}
	if out, err := run("./scripts/check-large-files"); err != nil {
		t.Fatalf("the check refused test data or small files: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "offsync"), big, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := run("git", "add", "offsync"); err != nil {
		t.Fatalf("git add: %v %s", err, out)
	}
	out, err := run("./scripts/check-large-files")
	if err == nil || !strings.Contains(out, "offsync") {
		t.Fatalf("the check passed a tracked 1 MB binary: %v\n%s", err, out)
	}
}

// goBlockRE matches the Go code blocks of a markdown file.
var goBlockRE = regexp.MustCompile("(?ms)^```go\n(.*?)^```")

// snippetLinesMissing returns the lines of the Go blocks of markdown that
// are not lines of source (spaces around them ignored).
func snippetLinesMissing(markdown, source string) []string {
	have := map[string]bool{}
	for _, l := range strings.Split(source, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var missing []string
	for _, m := range goBlockRE.FindAllStringSubmatch(markdown, -1) {
		for _, l := range strings.Split(m[1], "\n") {
			if l = strings.TrimSpace(l); l != "" && !have[l] {
				missing = append(missing, l)
			}
		}
	}
	return missing
}

// TestReadmeSnippetIsTheCompiledExample: every line of the README's Go code
// is a line of examples/readme/main.go, which compiles and whose test runs
// it, so the README shows code that builds.
func TestReadmeSnippetIsTheCompiledExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "examples", "readme", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if len(goBlockRE.FindAllString(string(readme), -1)) == 0 {
		t.Fatal("the README has no Go code block")
	}
	for _, l := range snippetLinesMissing(string(readme), string(src)) {
		t.Errorf("README line not in examples/readme/main.go: %s", l)
	}
	// Negative control: the old snippet's lines are caught.
	old := "```go\neng, _ := core.NewEngine(ctx, store, transport, &core.Options{\nw.Insert(ctx, &t)\n```\n"
	if got := snippetLinesMissing(old, string(src)); len(got) != 2 {
		t.Errorf("the check missed lines that are not in the example: %q", got)
	}
}

// TestLicenceAndIgnoredBuildOutputs: the repository carries its MIT
// licence, and what `go build` and a local run leave behind is ignored.
func TestLicenceAndIgnoredBuildOutputs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil || !strings.HasPrefix(string(b), "MIT License") {
		t.Errorf("LICENSE: %v, want the MIT licence", err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	for _, p := range []string{"cmd/offsync/offsync", "offsync", "offsync.db", "offsync.db-wal", "core/core.test", "cpu.prof"} {
		if err := exec.Command("git", "-C", root, "check-ignore", "-q", "--no-index", p).Run(); err != nil {
			t.Errorf("%s is not ignored by .gitignore", p)
		}
	}
}
